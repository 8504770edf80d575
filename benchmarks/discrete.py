"""Discretized control: SAC with every discrete estimator on Box tasks cut into action bins.

Each Box dimension becomes N = 11 evenly spaced values (``action_bins=11``; Tang & Agrawal
2020), so the policy is a factorized categorical over d sub-actions, N^d joint actions:

    Pendulum-v1                 d = 1     11 joint actions    exact feasible
    LunarLanderContinuous-v3    d = 2     121                 exact feasible
    HalfCheetah-v5              d = 6     1,771,561           exact infeasible (refused)

For every (task, estimator) and seed it trains one run (one at a time: timings stay honest on
a small machine), then prints one table per task: the final deterministic evaluation return
(mean and IQM over seeds with 95 % stratified-bootstrap CIs, ``pathwise.analysis.compare``),
and, from the gradient diagnostics logged during training (``pathwise.analysis.
diagnostics``), each estimator's bias against the exact gradient where the joint set can be
enumerated (floor-corrected, beside its noise floor) and its cosine to the reference.

    python benchmarks/discrete.py --only Pendulum-v1 --seeds 3      # the Pendulum rows
    python benchmarks/discrete.py --estimators pathwise exact --seeds 2
    python benchmarks/discrete.py --runs runs/discrete              # keep the run dirs; a
                                                                    # finished run is reused
    python benchmarks/discrete.py --report runs/discrete            # tables of finished runs
    python benchmarks/discrete.py --quick --seeds 1                 # 10x shorter smoke pass
    python benchmarks/discrete.py --only HalfCheetah-v5 --steps 25000 --every 5000
                                                                    # a shorter budget

Torch ports are used where they exist (``pathwise/Pendulum-v1``: the env steps on the
device); evaluations run on Gymnasium's own env, in its Box units (the saved policy maps its
bins back). Pendulum uses ``configs/preset/sac/Pendulum-v1-bins11.yaml``; the other tasks
use their Box presets with the budget below.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
from datetime import datetime
from pathlib import Path

BINS = 11
ESTIMATORS = ["pathwise", "score", "exact", "straight_through", "gumbel_rao", "reinmax"]
# (task label, env id trained on, preset or None (the env's own), env steps, diagnostics every)
TASKS = [
    ("Pendulum-v1", "pathwise/Pendulum-v1", "sac/Pendulum-v1-bins11", 10_000, 2_000),
    ("LunarLanderContinuous-v3", "LunarLanderContinuous-v3", None, 200_000, 20_000),
    ("HalfCheetah-v5", "HalfCheetah-v5", None, 100_000, 10_000),
]
MAX_ACTIONS = 4096  # estimator.max_actions' default: exact is skipped above it


def joint_actions(env_id: str) -> int:
    import gymnasium as gym

    import pathwise.envs  # noqa: F401  (registers the torch envs)

    env = gym.make(env_id)
    try:
        return BINS ** int(env.action_space.shape[0])
    finally:
        env.close()


def run_dir_for(root: Path, task: str, estimator: str, seed: int) -> Path:
    return root / f"{task}-bins{BINS}-{estimator}-s{seed}".replace("/", "-")


def overrides_for(env: str, preset: str | None, estimator: str, seed: int, steps: int,
                  diagnostics: int, run_dir: Path) -> list[str]:
    out = [f"env={env}", f"action_bins={BINS}", f"estimator={estimator}", f"seed={seed}",
           f"total_steps={steps}", f"diagnostics.every={diagnostics}", "wandb.mode=disabled",
           "device=cpu", "torch_threads=1", f"run_dir={run_dir}"]
    return ([f"preset={preset}"] if preset else []) + out


def train_one(overrides: list[str]) -> None:
    from pathwise.training.compose import compose_train
    from pathwise.training.config import as_train_config
    from pathwise.training.loop import train

    train(as_train_config(compose_train(overrides)[0]))


def finished(run_dir: Path, steps: int) -> bool:
    """A run of exactly ``steps`` env steps, trained to the end and evaluated there."""
    from omegaconf import OmegaConf

    from pathwise.training.tracking import read_metrics

    metrics, config = run_dir / "metrics.jsonl", run_dir / "config.yaml"
    if not ((run_dir / "policy.pt").is_file() and metrics.is_file() and config.is_file()):
        return False
    return OmegaConf.load(config).total_steps == steps and any(
        r.get("global_step") == steps and "eval/return_mean" in r for r in read_metrics(metrics))


# -- the report ------------------------------------------------------------------------------
def _ci(value: float, ci) -> str:
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def seeds_mean(runs: list, metric: str) -> float | None:
    """A diagnostic over seeds: each run's mean over its last 10 % of steps (compare's
    score), then the mean over runs; None where no run logged it."""
    scores = [r.score(metric) for r in runs]
    scores = [s for s in scores if s is not None and math.isfinite(s)]
    return sum(scores) / len(scores) if scores else None


def task_table(runs: list, task: str, exact_feasible: bool) -> str:
    """One markdown table for a task's runs (``compare.Run``s)."""
    import numpy as np

    from pathwise.analysis.compare import group_runs, summarize

    returns = {(row.estimator, row.variant): row
               for row in summarize(runs, "eval/return_mean")}
    feasible = "exact feasible" if exact_feasible else "exact infeasible"
    lines = [f"**{task}**, {BINS} bins ({feasible})", "",
             "| estimator | seeds | steps | final return: mean [95% CI] | IQM [95% CI] | "
             "bias vs exact (floor) | bias / ‖∇‖ | cosine to reference | min/run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for group in group_runs(runs):  # one per estimator (and budget, where runs differ)
        estimator, members = group.estimator, group.runs
        row = returns.get((estimator, group.variant))
        if row is None:
            continue
        bias = seeds_mean(members, f"grad/{estimator}/bias_corrected")
        floor = seeds_mean(members, f"grad/{estimator}/bias_se")
        cosine = seeds_mean(members, f"grad/{estimator}/cosine")
        # ‖∇‖ of the exact gradient in the same runs: its ``signal`` is ‖ḡ‖² (no floor).
        exact_signal = seeds_mean(members, "grad/exact/signal")
        norm = math.sqrt(exact_signal) if exact_signal and exact_signal > 0 else None
        minutes = np.median([r.records[-1]["time"] for r in members]) / 60
        label = group.label.removeprefix("sac-")
        lines.append(
            f"| {label} | {row.runs} | {row.steps:,} | {_ci(row.mean, row.mean_ci)} | "
            f"{_ci(row.iqm, row.iqm_ci)} | "
            f"{'—' if bias is None else f'{bias:.3g} ({floor:.2g})'} | "
            f"{'—' if bias is None or norm is None else f'{bias / norm:.2f}'} | "
            f"{'—' if cosine is None else f'{cosine:.3f}'} | {minutes:.1f} |")
    return "\n".join(lines)


def machine() -> str:
    from pathwise.training.runtime import describe_machine, load_average

    return (f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {describe_machine()}; "
            f"load average {load_average()}; 1 torch thread per run")


def report(root: Path) -> str:
    from pathwise.analysis.compare import find_runs, load_run

    runs = [load_run(p) for p in find_runs([root])]
    out = []
    for task, env, *_ in TASKS:
        mine = [r for r in runs if r.config.env == env
                and int(r.config.get("action_bins", 0)) == BINS
                and finished(r.path, int(r.config.total_steps))]  # not one still training
        if mine:
            out.append(task_table(mine, task, joint_actions(env) <= MAX_ACTIONS))
    return "\n\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="tasks to run (default: all)")
    parser.add_argument("--estimators", nargs="*", default=ESTIMATORS)
    parser.add_argument("--quick", action="store_true", help="10x fewer steps (smoke pass)")
    parser.add_argument("--steps", type=int,
                        help="env steps per run for every task chosen (default: each task's own)")
    parser.add_argument("--every", type=int,
                        help="env steps between gradient diagnostics (default: each task's own)")
    parser.add_argument("--runs", type=Path,
                        help="keep each run's dir under here (default: a temporary dir); a "
                             "finished run found there is read, not trained again")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="print the tables of the finished runs under DIR; train nothing")
    args = parser.parse_args(argv)
    unknown = set(args.estimators) - set(ESTIMATORS)
    if unknown:
        parser.error(f"unknown estimators {sorted(unknown)}; valid: {', '.join(ESTIMATORS)}")
    for name in ("steps", "every"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    print(f"python {' '.join(shlex.quote(a) for a in sys.argv)}\n{machine()}\n")
    if args.report:
        print(report(args.report))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = args.runs or Path(tmp)
        for task, env, preset, steps, every in TASKS:
            if args.only and task not in args.only:
                continue
            steps, every = args.steps or steps, args.every or every
            steps, every = (steps // 10, max(1, every // 10)) if args.quick else (steps, every)
            feasible = joint_actions(env) <= MAX_ACTIONS
            for estimator in args.estimators:
                if estimator == "exact" and not feasible:
                    print(f"  {task}: exact skipped ({joint_actions(env):,} joint actions > "
                          f"max_actions={MAX_ACTIONS})", file=sys.stderr)
                    continue
                for seed in range(args.seeds):
                    run_dir = run_dir_for(root, task, estimator, seed)
                    if not finished(run_dir, steps):
                        if run_dir.exists():
                            sys.exit(f"discrete.py: {run_dir} holds no finished {steps:,}-step "
                                     f"run; finish it (`pathwise train resume={run_dir}`) or "
                                     f"move it away")
                        train_one(overrides_for(env, preset, estimator, seed, steps, every,
                                                run_dir))
                    print(f"  {task} {estimator} seed {seed}: done ({run_dir})",
                          file=sys.stderr, flush=True)
        print(report(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
