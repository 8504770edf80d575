"""``pathwise train | eval | compare | diagnose | lab``: the command line.

Exit codes: 0 success; 1 a runtime failure (training diverged, a missing dependency, a bug);
2 a usage error (bad override, unknown key or env, missing or unreadable file); 130 Ctrl-C.
Errors are one line on stderr; ``--debug`` (or ``HYDRA_FULL_ERROR=1``) shows the traceback.

Heavy modules (torch, Hydra, wandb, matplotlib) are imported inside the commands, so that
``pathwise --help`` and ``pathwise --version`` answer at once.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

PROG = "pathwise"

TOP_HELP = f"""\
usage: {PROG} [--version] [--help] COMMAND [ARGS]

Policy-gradient estimators (pathwise, score function, exact) on Gymnasium tasks.

commands:
  train     train an agent: {PROG} train [OVERRIDES]   e.g. env=CartPole-v1 estimator=score
  eval      evaluate a saved policy: {PROG} eval RUN_DIR|POLICY_FILE
  compare   aggregate runs over seeds, plot learning curves: {PROG} compare RUN_DIR...
  diagnose  gradient variance, SNR and bias of every estimator at a checkpoint:
            {PROG} diagnose RUN_DIR
  lab       textbook estimator results, reproduced and checked: {PROG} lab --out DIR

options:
  -h, --help   show this message; `{PROG} COMMAND --help` describes a command
  --version    print the version
  --debug      show the full traceback of an error (also HYDRA_FULL_ERROR=1)

quickstart:
  {PROG} train                  SAC, pathwise estimator, Pendulum-v1, 20k steps
  {PROG} eval runs/<that run>
"""


class UsageError(ValueError):
    """A command line that cannot run as written (exit code 2)."""


class RuntimeFailure(RuntimeError):
    """A command that could not finish (exit code 1)."""


def version() -> str:
    from pathwise import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pathwise`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(TOP_HELP, end="")
        return 0
    if argv[0] == "--version":
        print(f"{PROG} {version()}")
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{PROG}: error: unknown command {command!r}; choose from "
              f"{', '.join(COMMANDS)} (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        code, message = classify(err)
        print(f"{PROG} {command}: error: {message}", file=sys.stderr)
        return code


# Errors that carry a one-line message for the user, by class name (importing their modules
# here would import torch just to print an argparse error).
USAGE_ERRORS = {"UsageError", "ConfigError", "EnvError", "CheckpointError", "CompareError",
                "FileNotFoundError"}
RUNTIME_ERRORS = {"TrainingError", "RuntimeFailure"}


def classify(err: BaseException) -> tuple[int, str]:
    """Exit code and one-line message of an error that reached the command line."""
    names = {cls.__name__ for cls in type(err).__mro__}
    message = " ".join(str(err).split()) or type(err).__name__
    if names & USAGE_ERRORS:
        return 2, message
    if names & RUNTIME_ERRORS:
        return 1, message
    return 1, f"{type(err).__name__}: {message} (rerun with --debug for the traceback)"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


# == train ==================================================================================
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


def cmd_train(args: list[str]) -> int:
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
    """Train one composed config with a progress bar; print the summary table."""
    from pathwise.training.compose import to_train_config
    from pathwise.training.loop import default_run_dir, resolve_device, train

    tc = to_train_config(cfg)
    if not tc.run_dir and not tc.resume:
        tc.run_dir = str(default_run_dir(tc))
    run_dir = tc.resume or tc.run_dir
    device = resolve_device(tc.device)
    what = f"{tc.agent.name}-{tc.estimator.name} on {tc.env}"
    detail = f"preset {preset}" if preset else ("resumed" if tc.resume else "no preset")
    header = (f"{PROG} train: {what} ({detail}), {tc.total_steps:,} steps, seed {tc.seed}, "
              f"{device}, wandb {tc.wandb.mode} -> {run_dir}")
    started = time.perf_counter()
    with ProgressBar(tc.total_steps, what, header, enabled=progress) as bar:
        result = train(tc, progress=bar)
    print_train_summary(tc, result, time.perf_counter() - started)
    return 130 if result.interrupted else 0


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
                           f"{_duration(seconds)}")
    if result.final_eval is not None:
        e = result.final_eval
        table.add_row("final eval", f"{e.return_mean:.2f} ± {e.return_std:.2f} "
                                    f"(mean ± std of {e.episodes} deterministic episodes)")
    table.add_row("policy", str(Path(result.run_dir) / "policy.pt"))
    if result.wandb_dir is not None:
        hint = f"wandb sync {result.wandb_dir}" if tc.wandb.mode == "offline" else "synced"
        table.add_row("wandb", f"{tc.wandb.mode}: {hint}")
    if result.interrupted:
        table.add_row("resume", f"{PROG} train resume={result.run_dir}")
    table.add_row("next", f"{PROG} eval {result.run_dir}")
    _console().print(table)


def _console(stderr: bool = False):
    """A rich console; not on a terminal (a pipe, a file, a test), a wide one, so that tables
    of paths are never folded or cut at 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=200)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


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


# == eval ===================================================================================
def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} eval", description=(
        "Run a saved policy for N episodes (deterministic actions unless --stochastic) and "
        "report the mean return. Writes eval.json into the run directory; with wandb on for "
        "the run, logs a job_type=eval run in its group."))
    p.add_argument("target", metavar="RUN_DIR|POLICY_FILE",
                   help="a run directory (its policy.pt) or a policy file, e.g. "
                        "RUN_DIR/checkpoints/best.pt (the policy at its best evaluation)")
    p.add_argument("--episodes", type=_positive_int, default=10, metavar="N",
                   help="episodes to run (default 10)")
    p.add_argument("--stochastic", action="store_true",
                   help="sample actions instead of taking the policy's mode")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="episode i is reset with seed S+i (default: the seeds the training "
                        "run evaluated with; 0 for a policy file outside a run directory)")
    p.add_argument("--env", metavar="ID", help="another env id with the same spaces "
                                                "(default: the one the policy was trained on)")
    p.add_argument("--video", metavar="DIR", help="record every episode as mp4 into DIR "
                                                   "(Gymnasium RecordVideo; needs moviepy)")
    p.add_argument("--json", action="store_true", help="print eval.json's object alone")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--wandb", choices=("offline", "online", "disabled"), metavar="MODE",
                   help="offline | online | disabled (default: the training run's wandb.mode; "
                        "disabled for a policy file outside a run directory)")
    return p


def _resolve_target(target: str) -> tuple[Path, Path | None]:
    """``(policy file, run dir or None)`` of an eval target."""
    path = Path(target)
    if path.is_dir():
        policy = path / "policy.pt"
        if not policy.is_file():
            hint = (f"; the run was not finished: {PROG} train resume={path}"
                    if (path / "checkpoints" / "last.pt").is_file() else "")
            raise UsageError(f"{path}: no policy.pt in this directory{hint}")
        return policy, path
    if path.is_file():
        # policy.pt sits in its run dir; checkpoints/best.pt one level down.
        for run_dir in (path.parent, path.parent.parent):
            if (run_dir / "config.yaml").is_file():
                return path, run_dir
        return path, None
    raise UsageError(f"{path}: no such run directory or policy file")


def _check_fits(policy, policy_file: Path, env, env_id: str) -> None:
    from gymnasium import spaces

    space = env.action_space
    env_discrete = isinstance(space, spaces.Discrete)
    env_actions = int(space.n) if env_discrete else int(space.shape[0])
    env_obs = int(env.observation_space.shape[0])
    if (policy.obs_dim, policy.discrete, policy.action_dim) != (env_obs, env_discrete,
                                                                env_actions):
        def kind(discrete, n):
            return f"Discrete({n})" if discrete else f"Box({n},)"
        raise UsageError(
            f"{policy_file} does not fit {env_id}: the policy takes {policy.obs_dim}-dim "
            f"observations and acts in {kind(policy.discrete, policy.action_dim)}; the env has "
            f"{env_obs}-dim observations and {kind(env_discrete, env_actions)} actions")
    # Same shapes, different action ranges: the policy would act in the range it was trained
    # for, which the env clips or rejects. Say so instead.
    if env_discrete and policy.action_start != int(space.start):
        raise UsageError(f"{policy_file} does not fit {env_id}: the policy's actions start at "
                         f"{policy.action_start}, the env's at {int(space.start)}")
    if not env_discrete:
        import numpy as np

        low, high = policy.action_low.cpu().numpy(), policy.action_high.cpu().numpy()
        if not (np.allclose(low, space.low) and np.allclose(high, space.high)):
            raise UsageError(f"{policy_file} does not fit {env_id}: the policy acts in "
                             f"[{low.tolist()}, {high.tolist()}], the env in "
                             f"[{space.low.tolist()}, {space.high.tolist()}]")


def _make_eval_env(env_id: str, video: str | None, name: str):
    from pathwise.envs.make import make_env

    if not video:
        return make_env(env_id)
    import importlib.util

    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    needs = "--video needs moviepy, which Gymnasium's RecordVideo encodes mp4 with: " \
            'pip install "pathwise-rl[video]" (in a checkout: pip install -e ".[video]")'
    if importlib.util.find_spec("moviepy") is None:  # before making an env that warns
        raise RuntimeFailure(needs)
    env = make_env(env_id, render_mode="rgb_array")
    try:
        return RecordVideo(env, video_folder=video, episode_trigger=lambda _: True,
                           name_prefix=name, disable_logger=True)
    except gym.error.DependencyNotInstalled as err:  # moviepy found but not importable
        env.close()
        raise RuntimeFailure(f"{needs} ({err})") from None
    except BaseException:
        env.close()
        raise


def cmd_eval(args: list[str]) -> int:
    opts = eval_parser().parse_args(args)
    policy_file, run_dir = _resolve_target(opts.target)
    from pathwise.training.checkpoint import load_policy
    from pathwise.training.evaluation import eval_seed, evaluate
    from pathwise.training.loop import resolve_device

    policy = load_policy(policy_file, device=resolve_device(opts.device))
    meta = policy.metadata
    env_id = opts.env or meta.get("env_id")
    if not env_id:
        raise UsageError(f"{policy_file} does not say which env it was trained on; pass --env ID")
    train_cfg = None
    if run_dir is not None:
        from omegaconf import OmegaConf

        train_cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    name = f"eval-{(run_dir or policy_file.parent).name}"
    env = _make_eval_env(env_id, opts.video, name)
    try:
        _check_fits(policy, policy_file, env, env_id)
        if opts.seed is None:  # reproduce the run's own evaluation episodes
            opts.seed = eval_seed(train_cfg["seed"]) if train_cfg is not None else 0
        result = evaluate(policy, env_id, opts.episodes, seed=opts.seed,
                          deterministic=not opts.stochastic, env=env)
    finally:
        env.close()
    report = {"episodes": result.episodes, "return_mean": result.return_mean,
              "return_std": result.return_std, "length_mean": result.length_mean,
              "returns": result.returns}
    if run_dir is not None:
        from pathwise.training.loop import atomic_write_text

        # eval.json for the run's policy.pt; eval-best.json for checkpoints/best.pt.
        report_file = ("eval.json" if policy_file.name == "policy.pt"
                       else f"eval-{policy_file.stem}.json")
        atomic_write_text(run_dir / report_file, json.dumps(report, indent=2) + "\n")
    # wandb as the training run had it (--wandb overrides); off for a bare policy file.
    mode = opts.wandb or (train_cfg or {}).get("wandb", {}).get("mode", "disabled")
    wandb_dir = None
    if mode != "disabled":
        wandb_dir = _log_eval_to_wandb(mode, train_cfg, policy, policy_file, run_dir, env_id,
                                       opts, result, name)
    if opts.json:
        print(json.dumps(report))
        return 0
    _print_eval(policy_file, env_id, opts, result, run_dir, wandb_dir)
    return 0


def _log_eval_to_wandb(mode, train_cfg, policy, policy_file, run_dir, env_id, opts, result,
                       name) -> Path:
    from pathwise.training.tracking import WandbRun, wandb_credentials_missing

    if mode == "online" and wandb_credentials_missing():
        raise UsageError("wandb online needs W&B credentials: run `wandb login`, or pass "
                         "--wandb offline")
    meta = policy.metadata
    wb = (train_cfg or {}).get("wandb", {})
    agent, estimator = meta.get("agent", "?"), meta.get("estimator", "?")
    run = WandbRun(mode=mode, project=wb.get("project", "pathwise"), entity=wb.get("entity"),
                   group=env_id, job_type="eval", tags=[agent, estimator, env_id, "eval"],
                   config={"policy": str(policy_file), "env": env_id, "episodes": opts.episodes,
                           "deterministic": not opts.stochastic, "seed": opts.seed,
                           "train": train_cfg},
                   run_dir=run_dir or policy_file.parent, name=name)
    try:
        step = int(meta.get("global_step") or 0)
        run.log({"global_step": step, "eval/return_mean": result.return_mean,
                 "eval/return_std": result.return_std, "eval/length_mean": result.length_mean})
        run.log_table("eval/episodes", ["episode", "return", "length"],
                      [[i, r, n] for i, (r, n) in enumerate(zip(result.returns,
                                                                result.lengths))])
        if opts.video:
            videos = sorted(Path(opts.video).glob(f"{name}*.mp4"))
            if videos:
                run.log_files("video", {f"eval/video_{i}": p for i, p in enumerate(videos)})
        run.summary({"eval/return_mean": result.return_mean,
                     "eval/return_std": result.return_std, "eval/episodes": result.episodes})
    except BaseException:
        run.finish(1)
        raise
    run.finish(0)
    return run.dir


def _print_eval(policy_file, env_id, opts, result, run_dir, wandb_dir) -> None:
    from rich import box
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{policy_file}[/bold] on {env_id}", highlight=False)
    table = Table(box=box.SIMPLE)
    table.add_column("episode", justify="right")
    table.add_column("return", justify="right")
    table.add_column("length", justify="right")
    for i, (ret, length) in enumerate(zip(result.returns, result.lengths)):
        table.add_row(str(i), f"{ret:.2f}", str(length))
    console.print(table)
    mode = "stochastic" if opts.stochastic else "deterministic"
    console.print(f"return {result.return_mean:.2f} ± {result.return_std:.2f} (mean ± std over "
                  f"{result.episodes} {mode} episodes, seeds {opts.seed}..."
                  f"{opts.seed + result.episodes - 1}); mean length {result.length_mean:.1f}")
    if run_dir is not None:
        console.print(f"wrote {run_dir / 'eval.json'}")
    if opts.video:
        console.print(f"videos in {opts.video}")
    if wandb_dir is not None:
        console.print(f"wandb: {wandb_dir}")


# == compare ================================================================================
def compare_parser() -> argparse.ArgumentParser:
    from pathwise.analysis.compare import DEFAULT_METRIC

    p = _Parser(prog=f"{PROG} compare", description=(
        "Group runs by (env, agent, estimator), aggregate seeds (mean and interquartile mean "
        "with 95% stratified-bootstrap CIs, as rliable), print the table, and write learning "
        "curves (vs env steps and vs wall-clock) and a markdown report."))
    p.add_argument("paths", nargs="+", metavar="RUN_DIR",
                   help="run directories, or directories holding them (a sweep, runs/)")
    p.add_argument("--metric", default=DEFAULT_METRIC, metavar="KEY",
                   help=f"metrics.jsonl key to compare (default {DEFAULT_METRIC}); shell "
                        f"wildcards compare several, e.g. 'grad/*/variance' (every "
                        f"estimator's gradient variance, with diagnostics on)")
    p.add_argument("--out", metavar="DIR",
                   help="where figures and report.md go (default runs/compare/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the table as JSON alone")
    p.add_argument("--wandb", action="store_true",
                   help="also log the table and figures to a job_type=compare wandb run")
    return p


def cmd_compare(args: list[str]) -> int:
    opts = compare_parser().parse_args(args)
    from pathwise.analysis import compare

    runs = [compare.load_run(p) for p in compare.find_runs(opts.paths)]
    rows = compare.summarize(runs, opts.metric)
    out = Path(opts.out or Path("runs") / "compare" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    figures = compare.plot_curves(runs, opts.metric, out)
    report = out / "report.md"
    report.write_text(compare.markdown_report(rows, runs, figures, out), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n",
                                      encoding="utf-8")
    wandb_dir = _log_compare_to_wandb(runs, rows, figures, out) if opts.wandb else None
    if opts.json:
        print(json.dumps([r.to_dict() for r in rows]))
        return 0
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE, title=f"{opts.metric}: {len(runs)} runs", title_justify="left")
    for name in compare.table_header(rows):
        table.add_column(name, justify="right" if name in ("runs", "steps") else "left")
    for cells in compare.table_rows(rows):
        table.add_row(*cells)
    console = _console()
    console.print(table)
    console.print(f"wrote {report} and {len(figures)} figures to {out}")
    if wandb_dir is not None:
        console.print(f"wandb: {wandb_dir}")
    return 0


def _log_compare_to_wandb(runs, rows, figures, out: Path) -> Path:
    from omegaconf import OmegaConf

    from pathwise.analysis import compare
    from pathwise.training.tracking import WandbRun, wandb_credentials_missing

    wb = OmegaConf.to_container(OmegaConf.load(runs[0].path / "config.yaml")).get("wandb", {})
    mode = wb.get("mode") if wb.get("mode") in ("offline", "online") else "offline"
    if mode == "online" and wandb_credentials_missing():
        mode = "offline"
    envs = sorted({r.env for r in runs})
    run = WandbRun(mode=mode, project=wb.get("project", "pathwise"), entity=wb.get("entity"),
                   group=envs[0] if len(envs) == 1 else "compare", job_type="compare",
                   tags=["compare", *envs], config={"metric": rows[0].metric,
                                                    "runs": [str(r.path) for r in runs]},
                   run_dir=out, name=f"compare-{out.name}")
    try:
        run.log_table("compare/table", compare.table_header(rows), compare.table_rows(rows))
        if figures:
            run.log_files("image", {f"compare/{p.stem}": p for p in figures})
    except BaseException:
        run.finish(1)
        raise
    run.finish(0)
    return run.dir


# == diagnose ===============================================================================
def _at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a variance needs two estimates), "
                                         f"got {value}")
    return value


def diagnose_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} diagnose", description=(
        "Rebuild a saved agent (checkpoints/last.pt) and measure the actor gradient of every "
        "estimator that applies, K times on the same states: total variance, mean "
        "per-parameter SNR, |mean|^2/variance, cosine to the reference gradient (exact for "
        "Discrete, a many-sample pathwise one for Box) and bias against the exact gradient. "
        "States come from the replay buffer (SAC) or fresh episodes (REINFORCE). Defaults: "
        "the run's diagnostics config and seed, so at a step where training measured, the "
        "numbers are the ones it logged as grad/*."))
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="a run directory (its checkpoints/last.pt) or a checkpoint file")
    p.add_argument("--samples", type=_at_least_two, metavar="K",
                   help="independent gradient estimates per estimator (run's default: 16)")
    p.add_argument("--batch", type=_positive_int, metavar="N",
                   help="SAC: states the objective averages over (run's default: 64)")
    p.add_argument("--num-samples", type=_positive_int, metavar="M",
                   help="action draws per state of each sampling estimator (default 4)")
    p.add_argument("--episodes", type=_at_least_two, metavar="E",
                   help="REINFORCE: fresh episodes, one estimate each (default 16)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the measurement "
                                                         "(default: the run's seed)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--json", action="store_true", help="print the report as JSON alone")
    return p


def cmd_diagnose(args: list[str]) -> int:
    opts = diagnose_parser().parse_args(args)
    path = Path(opts.target)
    if not path.exists():
        raise UsageError(f"{path}: no such run directory or checkpoint")
    from pathwise.analysis.diagnostics import diagnose
    from pathwise.training.loop import resolve_device

    report, context = diagnose(path, device=resolve_device(opts.device), seed=opts.seed,
                               samples=opts.samples, batch_size=opts.batch,
                               num_samples=opts.num_samples, episodes=opts.episodes)
    if opts.json:
        print(json.dumps({**context, **report.to_dict()}))
        return 0
    _print_diagnosis(report, context)
    return 0


def _print_diagnosis(report, context: dict) -> None:
    from rich import box
    from rich.table import Table

    def num(value, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    console = _console()
    console.print(f"[bold]{context['checkpoint']}[/bold]: {context['agent']}-"
                  f"{context['estimator']} on {context['env']}, step {report.global_step:,}",
                  highlight=False)
    what = (f"{report.states} states, {report.num_samples} draws per state"
            if report.agent == "sac" else f"{report.states} steps of fresh episodes, "
                                          f"one estimate per episode")
    extra = "".join(f", {k} {v:.4g}" for k, v in (("α", report.alpha),
                                                    ("τ", report.temperature)) if v is not None)
    console.print(f"{what}; {report.parameters:,} actor parameters; reference: "
                  f"{report.reference}{extra}", highlight=False)
    table = Table(box=box.SIMPLE)
    for name in ("estimator", "K", "variance ± SE", "SNR", "|ḡ|²/variance", "cosine",
                 "bias (noise SE)"):
        table.add_column(name, justify="left" if name == "estimator" else "right")
    for s in report.estimators:
        label = s.estimator + (" (trains)" if s.estimator == report.trained_with else "")
        table.add_row(label, str(s.samples), f"{num(s.variance)} ± {num(s.variance_se, 2)}",
                      num(s.snr), num(s.signal_to_noise), num(s.cosine, 6),
                      "-" if s.bias is None else f"{num(s.bias)} ({num(s.bias_se, 2)})")
    console.print(table)
    console.print(f"variance: Σ_j Var_j over the K estimates; SNR: mean_j |ḡ_j|/std_j; bias: "
                  f"|ḡ − exact|, read against its noise SE sqrt(variance/K). "
                  f"{report.seconds:.2f}s.", highlight=False)


# == lab ====================================================================================
def lab_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} lab", description=(
        "Textbook results reproduced by the library's own estimators and checked against "
        "closed forms (Mohamed et al. 2020, §3): per-sample variance of pathwise and score "
        "function estimators on a Gaussian for three costs as k varies, variance against "
        "dimension, and Gumbel-softmax / straight-through bias and variance against the "
        "temperature on a categorical cost. Writes PNG figures and lab.md."))
    p.add_argument("--out", metavar="DIR",
                   help="where figures, lab.md and lab.json go (default runs/lab/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the results as JSON alone")
    p.add_argument("--samples", type=_at_least_two, default=None, metavar="N",
                   help="Monte Carlo draws per point (default 20000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    return p


def cmd_lab(args: list[str]) -> int:
    opts = lab_parser().parse_args(args)
    from pathwise.analysis import lab

    out = Path(opts.out or Path("runs") / "lab" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to {out}: {err.strerror or err}") from None
    results = lab.run(out, samples=opts.samples or lab.SAMPLES, seed=opts.seed)
    if opts.json:
        print(json.dumps(results))
        return 0
    console = _console()
    checks = results["checks"]
    console.print(f"[bold]pathwise lab[/bold]: {checks['passed']} of {checks['total']} "
                  f"empirical variances within {checks['z']:g} SE of the closed form "
                  f"(largest |z| {checks['max_abs_z']:.2f}); {results['seconds']:.1f}s",
                  highlight=False)
    for path in results["figures"]:
        console.print(f"  {path}", highlight=False)
    console.print(f"  {results['report']}", highlight=False)
    return 0 if checks["passed"] == checks["total"] else 1


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "compare": cmd_compare,
            "diagnose": cmd_diagnose, "lab": cmd_lab}


if __name__ == "__main__":
    sys.exit(main())
