"""``pathwise train``: compose the config (Hydra, presets), train with progress, summarize;
``-m`` sweeps through Hydra's multirun."""

from __future__ import annotations

import functools
import os
import sys
import textwrap
import time
from pathlib import Path

from pathwise.cli.common import PROG, console, duration
from pathwise.cli.progress import Progress
from pathwise.errors import UsageError

TRAIN_USAGE = f"usage: {PROG} train [-m] [--print-config] [--no-progress] [OVERRIDE ...]"


def train_help() -> str:
    from pathwise.training.compose import field_rows, group_options, presets

    lines = [TRAIN_USAGE, "",
             "Train an agent. OVERRIDEs are Hydra's key=value (lists as key=[64,64]); the config",
             "tree is configs/train.yaml, with groups agent/, estimator/ and preset/.", "",
             "examples:",
             f"  {PROG} train                                   SAC, pathwise, Pendulum-v1, 20k",
             f"  {PROG} train env=CartPole-v1 estimator=exact seed=1",
             f"  {PROG} train agent=reinforce env=CartPole-v1",
             f"  {PROG} train -m seed=0,1,2 estimator=pathwise,score   one run per combination",
             f"  {PROG} train resume=runs/Pendulum-v1/sac-pathwise/s0-20250101-120000",
             "", "options:",
             "  -m, --multirun     sweep comma-separated values (Hydra multirun): one run dir",
             "                     per job under hydra.sweep.dir; jobs run one by one, or in",
             "                     parallel with hydra/launcher=joblib, on Slurm with",
             "                     hydra/launcher=slurm, on Ray with hydra/launcher=ray_cluster",
             "  --print-config     print the composed config (preset applied) and exit",
             "  --no-progress      no progress bar",
             "  --debug            full traceback on errors",
             "  -h, --help         this message",
             "", "config groups:",
             f"  agent=             {', '.join(group_options('agent'))} (default sac)",
             f"  estimator=         {', '.join(group_options('estimator'))} (default pathwise;"
             " reinforce: score)",
             "  preset=            tuned values for (agent, env), applied automatically when",
             "                     one exists ('/' in an env id is '-' in its name); ~preset",
             "                     trains on the defaults alone. Shipped:"]
    for agent, envs in presets().items():
        lines += textwrap.wrap(f"{agent}/: {', '.join(envs)}", width=92,
                               initial_indent=" " * 23, subsequent_indent=" " * 27,
                               break_on_hyphens=False)
    lines += ["", "fields (key=value; default in brackets):"]
    for section, rows in field_rows():
        lines.append(f"  [{section}]")
        width = max(len(name) for name, _, _ in rows)
        for name, default, text in rows:
            lines.append(f"    {name:<{width}}  {text} [{default}]")
    return "\n".join(lines) + "\n"


def main(args: list[str]) -> int:
    flags = {"-m": "multirun", "--multirun": "multirun", "--print-config": "print_config",
             "--no-progress": "no_progress", "-h": "help", "--help": "help"}
    chosen, overrides = set(), []
    for arg in args:
        if arg in flags:
            chosen.add(flags[arg])
        elif arg.startswith("-") and "=" not in arg:
            raise UsageError(f"unknown option {arg!r} (see {PROG} train --help)")
        else:
            overrides.append(arg)
    if "help" in chosen:
        print(train_help(), end="")
        return 0
    if "multirun" in chosen:
        return _multirun(overrides, progress="no_progress" not in chosen)
    from omegaconf import OmegaConf

    from pathwise.training.compose import compose_train

    cfg, preset = compose_train(overrides)
    if "print_config" in chosen:
        print(f"# preset: {preset or 'none'}")
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    return run_training(cfg, preset, progress="no_progress" not in chosen)


def run_training(cfg, preset: str | None, progress: bool = True) -> int:
    """Train one composed config, showing progress (``progress=False``: the header only);
    print the summary table."""
    from pathwise.training.config import as_train_config
    from pathwise.training.loop import train
    from pathwise.training.run_dir import default_run_dir
    from pathwise.training.runtime import auto_threads, resolve_device

    tc = as_train_config(cfg)
    if not tc.run_dir and not tc.resume:
        tc.run_dir = str(default_run_dir(tc))
    run_dir = tc.resume or tc.run_dir
    device = resolve_device(tc.device)
    if not tc.torch_threads:
        tc.torch_threads = auto_threads()  # decided once, and recorded in config.yaml
    what = f"{tc.agent.name}-{tc.estimator.name} on {tc.env}"
    detail = f"preset {preset}" if preset else ("resumed" if tc.resume else "no preset")
    header = (f"{PROG} train: {what} ({detail}), {tc.total_steps:,} steps, seed {tc.seed}, "
              f"{device}, {tc.torch_threads} torch thread{'s' * (tc.torch_threads > 1)}, "
              f"wandb {tc.wandb.mode} -> {run_dir}")
    started = time.perf_counter()
    with Progress(tc.total_steps, what, header, enabled=progress) as report:
        result = train(tc, progress=report)
    print_train_summary(tc, result, time.perf_counter() - started)
    return 130 if result.interrupted else 0


def print_train_summary(tc, result, seconds: float) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title="pathwise train" + (": interrupted" if result.interrupted else ""),
                  box=box.SIMPLE, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("run", str(result.run_dir))
    table.add_row("agent", f"{tc.agent.name}, estimator {tc.estimator.name}, env {tc.env}, "
                           f"seed {tc.seed}")
    table.add_row("steps", f"{result.global_step:,} of {tc.total_steps:,} in "
                           f"{duration(seconds)}")
    if result.final_eval is not None:
        e = result.final_eval
        label = f"last eval (step {result.eval_step:,})" if result.interrupted else "final eval"
        table.add_row(label, f"{e.return_mean:.2f} ± {e.return_std:.2f} (mean ± std of "
                             f"{e.episodes} deterministic episodes)")
    table.add_row("policy", str(Path(result.run_dir) / "policy.pt"))
    if result.wandb_dir is not None:
        hint = f"wandb sync {result.wandb_dir}" if tc.wandb.mode == "offline" else "synced"
        table.add_row("wandb", f"{tc.wandb.mode}: {hint}")
    if result.interrupted:
        table.add_row("resume", f"{PROG} train resume={result.run_dir}")
    table.add_row("next", f"{PROG} eval {result.run_dir}")
    console().print(table)


# -- multirun -------------------------------------------------------------------------------
def _multirun(overrides: list[str], progress: bool) -> int:
    """``pathwise train -m``: Hydra's multirun (sweeper + launcher), one run dir per job under
    ``hydra.sweep.dir`` (default runs/multirun/<timestamp>/<job number>)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    from pathwise.training.compose import (
        CONFIG_MODULE,
        CONFIG_NAME,
        explain,
        parse_overrides,
        register_schemas,
    )

    parse_overrides(overrides)  # one-line errors for malformed overrides, before Hydra's own
    register_schemas()
    hydra = Hydra.create_main_hydra2(
        task_name="train", config_search_path=create_config_search_path(f"pkg://{CONFIG_MODULE}"))
    try:
        batches = hydra.multirun(config_name=CONFIG_NAME, overrides=overrides,
                                 task_function=functools.partial(_multirun_job,
                                                                 progress=progress))
    except Exception as err:
        if type(err).__module__.startswith(("hydra", "omegaconf")):
            raise UsageError(explain(err)) from None
        raise
    finally:
        GlobalHydra.instance().clear()
    jobs = [job for batch in batches or [] for job in batch]
    sweep_dirs = sorted({_sweep_dir(job.hydra_cfg.hydra) for job in jobs if job.hydra_cfg})
    if sweep_dirs:
        print(f"{PROG} train -m: {len(jobs)} runs in {', '.join(sweep_dirs)}; aggregate them: "
              f"{PROG} compare {' '.join(sweep_dirs)}", file=sys.stderr)
    return 0


def _sweep_dir(hydra_cfg) -> str:
    """The sweep dir a job ran under: its output dir less ``hydra.sweep.subdir`` (resolving
    ``hydra.sweep.dir`` again here could give another ``${now:...}``)."""
    output_dir = Path(str(hydra_cfg.runtime.output_dir))
    sweep_dir = output_dir.parents[len(Path(str(hydra_cfg.sweep.subdir)).parts) - 1]
    return os.path.relpath(sweep_dir) if sweep_dir.is_relative_to(Path.cwd()) else str(sweep_dir)


def _multirun_job(_cfg, progress: bool) -> int:
    """One job of a multirun: its overrides composed like a single run (presets included)."""
    from hydra.core.hydra_config import HydraConfig

    from pathwise.training.compose import compose_train
    from pathwise.training.sweeps import job_threads, runs_in_parallel

    hc = HydraConfig.get()
    cfg, preset = compose_train(list(hc.overrides.task))
    if not cfg.run_dir:
        cfg.run_dir = str(hc.runtime.output_dir)
    # Parallel jobs share the cores: jobs x threads <= cores (agents/sweeps.py).
    cfg.torch_threads = job_threads(cfg.torch_threads, hc.launcher)
    print(f"{PROG} train -m: job {hc.job.num}: {' '.join(hc.overrides.task)} "
          f"(torch threads {cfg.torch_threads})", file=sys.stderr)
    code = run_training(cfg, preset, progress=progress and not runs_in_parallel(hc.launcher))
    if code == 130:
        raise KeyboardInterrupt
    return code
