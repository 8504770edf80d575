"""Progress of a training run: a rich bar on a terminal."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """The ``progress`` hook of ``agents.runner.train`` as a rich progress bar on stderr:
    steps, steps/s, last episodic return, elapsed and ETA. Redrawn at most 10 times a
    second, so the hook costs the loop next to nothing. ``header`` is printed at the first
    step, once the config, env and agent have been accepted (so an error stays one line)."""

    def __init__(self, total: int, description: str, header: str = "", enabled: bool = True):
        self.total, self.description, self.enabled = total, description, enabled
        self.header = header
        self._progress = self._task = None
        self._last = 0.0
        self._mark: tuple[int, float] | None = None
        self._sps = 0.0

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            self.enabled = False
            return self
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[sps]:>6} steps/s"),
            TextColumn("return {task.fields[ret]:>8}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console)
        self._progress.__enter__()
        return self

    def __call__(self, global_step: int, info: dict) -> None:
        if self.header:
            print(self.header, file=sys.stderr, flush=True)
            self.header = ""
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._task is None:  # first call: a resumed run starts part-way
            self._task = self._progress.add_task(self.description, total=self.total,
                                                 completed=global_step, sps="-", ret="-")
            self._mark = (global_step, now)
            return
        if now - self._last < 0.1 and global_step < self.total:
            return
        self._last = now
        steps, then = self._mark
        if now - then >= 1.0:  # steps/s over the last second or more
            self._sps = (global_step - steps) / (now - then)
            self._mark = (global_step, now)
        ret = info.get("episodic_return")
        self._progress.update(self._task, completed=global_step,
                              sps=f"{self._sps:,.0f}" if self._sps else "-",
                              ret="-" if ret is None or ret != ret else f"{ret:.4g}")

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
