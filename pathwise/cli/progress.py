"""Progress of a training run, readable wherever the output goes.

On a terminal: a rich bar (steps, steps/s, the mean return of the last 10 episodes, elapsed,
ETA) with one line above it per evaluation. Elsewhere (nohup, Slurm, a sweep's log, a pipe):
one plain line per log interval (step, steps/s, mean return, ETA) and one per evaluation,
no bar, no control characters, no trailing padding.
"""

from __future__ import annotations

import math
import sys
import time


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes
                                                      else f"{secs}s")


class Progress:
    """The ``progress`` hook of ``pathwise.training.loop.train`` (see its events).

    ``header`` is printed at the first event, once the config, env and agent have been
    accepted (so that an error stays one line). ``enabled=False``: the header only.
    ``stream``: where the lines go (stderr). The bar is redrawn at most 10 times a second, so
    the hook costs the loop next to nothing.
    """

    def __init__(self, total: int, description: str, header: str = "", enabled: bool = True,
                 stream=None):
        self.total, self.description, self.enabled = total, description, enabled
        self.header = header
        self.stream = stream or sys.stderr
        self.terminal = False
        self._bar = self._task = None
        self._last_draw = 0.0
        self._start: tuple[int, float] | None = None  # (step, time) of the first event
        self._sps = math.nan

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.console import Console

        console = Console(file=self.stream)
        self.terminal = console.is_terminal
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>7} steps/s"),
                TextColumn("return {task.fields[ret]:>8}"), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), console=console)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, global_step: int, info: dict) -> None:
        if self.header:
            print(self.header, file=self.stream, flush=True)
            self.header = ""
        if self._start is None:  # a resumed run starts part-way
            self._start = (global_step, time.perf_counter())
        if not self.enabled:
            return
        event = info.get("event", "step")
        if event == "log":
            self._sps = info.get("sps", math.nan)
        if self.terminal:
            self._draw(global_step, info, event)
        elif event in ("log", "eval"):
            print(self.line(global_step, info, event), file=self.stream, flush=True)

    def eta(self, global_step: int) -> float:
        """Seconds left at the average speed since this session's first step."""
        step0, time0 = self._start
        done, elapsed = global_step - step0, time.perf_counter() - time0
        return math.nan if done <= 0 else (self.total - global_step) * elapsed / done

    def line(self, global_step: int, info: dict, event: str) -> str:
        """One plain line for a log interval or an evaluation."""
        where = f"step {global_step:,}/{self.total:,} ({100 * global_step / self.total:.0f}%)"
        if event == "eval":
            best = ", best so far" if info.get("best") else ""
            return (f"{where}: eval return {_number(info['return_mean'])} ± "
                    f"{_number(info['return_std'], 3)} ({info['episodes']} episodes on "
                    f"{info.get('env', '?')}{best})")
        eta = self.eta(global_step)
        return (f"{where}: {_number(self._sps, 4)} steps/s, return "
                f"{_number(info.get('recent_return'))} (last 10 episodes), ETA "
                + ("-" if not math.isfinite(eta) else _duration(eta)))

    def _draw(self, global_step: int, info: dict, event: str) -> None:
        if event == "eval":
            self._bar.console.print(self.line(global_step, info, event), highlight=False)
        now = time.perf_counter()
        if self._task is None:
            self._task = self._bar.add_task(self.description, total=self.total,
                                             completed=global_step, sps="-", ret="-")
        if event == "step" and now - self._last_draw < 0.1 and global_step < self.total:
            return
        self._last_draw = now
        self._bar.update(self._task, completed=global_step, sps=_number(self._sps, 4),
                         ret=_number(info.get("recent_return")))
