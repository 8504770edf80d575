"""The headline comparison: pathwise vs score-function (vs exact, on Discrete) actor gradients.

SAC on four tasks, the estimator the only change, gradient diagnostics on (grad/* of every
estimator that applies, measured on the same states during training):

    env                       steps  seeds  estimators
    Pendulum-v1                 20k      5  pathwise, score
    CartPole-v1                 50k      5  pathwise, score, exact
    LunarLanderContinuous-v3   100k      3  pathwise, score
    LunarLander-v3             100k      3  pathwise, score, exact

Each env is one `pathwise train -m` sweep (so any Hydra launcher runs it), into
``<out>/runs/<env>/<job>``; then the compare machinery (agents/compare.py) writes into --out:
``estimators.md`` (the tables, the figures, the command that made them and the machine it ran
on), ``summary.json`` and ``figures/*.png``.

    python benchmarks/estimators.py --out docs/estimators                # all (hours on 2 cores)
    python benchmarks/estimators.py --out /tmp/est --quick                # smoke pass, a minute
    python benchmarks/estimators.py --out DIR --only CartPole-v1 Pendulum-v1 --seeds 3
    python benchmarks/estimators.py --out DIR --launcher joblib -- hydra.launcher.n_jobs=2
    python benchmarks/estimators.py --out DIR --launcher slurm -- hydra.launcher.partition=cpu
    python benchmarks/estimators.py --out DIR --compare-only              # re-aggregate

The default launcher runs one training at a time, so wall-clock curves stay honest on a
small machine. Runs already finished under an env's sweep dir are not run again: an
interrupted benchmark goes on where it stopped (once its unfinished runs are resumed or
removed), and a later, larger ``--seeds`` adds only the new seeds.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pathwise.training.runtime import describe_machine, load_average

# (env, total steps, seeds, estimators, env steps between gradient diagnostics)
TABLE = [
    ("Pendulum-v1", 20_000, 5, ("pathwise", "score"), 2_000),
    ("CartPole-v1", 50_000, 5, ("pathwise", "score", "exact"), 5_000),
    ("LunarLanderContinuous-v3", 100_000, 3, ("pathwise", "score"), 10_000),
    ("LunarLander-v3", 100_000, 3, ("pathwise", "score", "exact"), 10_000),
]
# --quick: every env and estimator, a few hundred steps, two seeds, small nets.
QUICK_STEPS, QUICK_SEEDS = 300, 2
QUICK_OVERRIDES = ["agent.hidden_sizes=[32,32]", "agent.learning_starts=100",
                   "agent.batch_size=32", "eval_every=0", "eval_episodes=2",
                   "checkpoint_every=0", "log_every=100", "diagnostics.samples=4"]
METRIC = "eval/return_mean"
# The diagnostics' statistics in the report, with their noise floors removed or beside them
# (docs/estimator-facts.md §6): pure noise shows ‖ḡ‖² = ΣVar/K and a median SNR_j of about
# 0.17 at K = 16, and an unbiased estimator's distance from the exact gradient is its floor.
STATISTICS = ("variance", "signal_to_noise_corrected", "snr_median", "snr_median_floor",
              "cosine", "bias_corrected", "bias_se")


def env_key(env: str) -> str:
    return env.replace("/", "-")


def sweep_overrides(env: str, steps: int, seeds: list[int], estimators, every: int,
                    quick: bool, launcher: str, wandb: str, extra: list[str]) -> list[str]:
    overrides = [f"env={env}", "agent=sac", f"estimator={','.join(estimators)}",
                 f"seed={','.join(str(s) for s in seeds)}", f"total_steps={steps}",
                 f"diagnostics.every={every}", f"wandb.mode={wandb}"]
    if quick:
        overrides += QUICK_OVERRIDES
    if launcher != "basic":
        overrides.append(f"hydra/launcher={launcher}")
    return overrides + extra


def runs_in(sweep: Path, steps: int | None = None) -> tuple[set[tuple[str, int]], list[Path]]:
    """``(estimator, seed)`` of the finished runs below ``sweep`` (those with a policy.pt),
    and the run dirs that started but did not finish. With ``steps``, a finished run of
    another budget (a ``--quick`` pass, or an older table) stops the benchmark: counting it
    as done would put runs of different lengths in one row."""
    from omegaconf import OmegaConf

    finished, unfinished = set(), []
    for config in sorted(sweep.rglob("config.yaml")) if sweep.is_dir() else []:
        run = config.parent
        if "wandb" in run.parts or not (run / "metrics.jsonl").exists():
            continue  # Hydra's own .hydra/config.yaml, or not a run
        if not (run / "policy.pt").is_file():
            unfinished.append(run)
            continue
        cfg = OmegaConf.load(config)
        if steps is not None and int(cfg.total_steps) != steps:
            raise SystemExit(f"{run}: a run of {int(cfg.total_steps):,} steps where this "
                             f"benchmark trains {steps:,}; give another --runs dir")
        finished.add((str(cfg.estimator.name), int(cfg.seed)))
    return finished, unfinished


def run_sweeps(plan, root: Path, args) -> None:
    """One ``pathwise train -m`` sweep per env, of the (estimator, seed) runs not yet finished
    under its sweep dir: a larger ``--seeds`` adds the new seeds in a sub-sweep
    ``seeds-<first>-<last>`` beside the runs already there."""
    from pathwise.cli import main as pathwise

    for env, steps, seeds, estimators, every in plan:
        sweep = root / env_key(env)
        finished, unfinished = runs_in(sweep, steps)
        if unfinished:
            names = ", ".join(str(run) for run in unfinished)
            raise SystemExit(f"{env}: unfinished runs in {sweep} ({names}); finish each with "
                             f"`pathwise train resume=<run dir>` or remove it, then rerun this "
                             f"script")
        todo = [s for s in range(seeds) if any((e, s) not in finished for e in estimators)]
        if not todo:
            print(f"{env}: {len(finished)} finished runs in {sweep}; not run again",
                  file=sys.stderr)
            continue
        partial = [s for s in todo if any((e, s) in finished for e in estimators)]
        if partial:
            raise SystemExit(f"{env}: seeds {partial} have some estimators finished in {sweep} "
                             f"and not others; remove those runs, then rerun this script")
        target = sweep if not sweep.exists() else sweep / f"seeds-{todo[0]}-{todo[-1]}"
        overrides = sweep_overrides(env, steps, todo, estimators, every, args.quick,
                                    args.launcher, args.wandb, args.overrides)
        print(f"{env}: pathwise train -m {shlex.join(overrides)} "
              f"hydra.sweep.dir={target}", file=sys.stderr, flush=True)
        code = pathwise(["train", "-m", "--no-progress", *overrides,
                         f"hydra.sweep.dir={target}"])
        if code != 0:
            raise SystemExit(f"{env}: the sweep failed (exit {code})")


# -- the report -----------------------------------------------------------------------------
def machine() -> str:
    import torch

    device = "cuda" if torch.cuda.is_available() else None
    return f"{describe_machine(device)}; load average at the end {load_average()}"


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"


def diagnostics_table(runs) -> list[str]:
    """Per (env, estimator trained with, estimator measured): the seeds' mean of each gradient
    statistic over the last 10 % of training (compare's score), floors removed or beside."""
    from pathwise.analysis import compare

    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for stat in STATISTICS:
        try:
            rows = compare.summarize(runs, f"grad/*/{stat}")
        except compare.CompareError:  # no run logged this statistic
            continue
        for row in rows:
            measured = row.metric.split("/")[1]
            values.setdefault((row.env, row.estimator, measured), {})[stat] = row.mean
    lines = ["| env | trained with | gradient of | variance | (‖ḡ‖² − variance/K) / variance | "
             "median SNR_j | its floor | cosine to reference | bias above its floor | the floor |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (env, trained, measured), stats in sorted(values.items()):
        cells = [fmt(stats.get(stat)) for stat in STATISTICS]
        if measured == "exact":  # the reference itself: its "bias" is float rounding
            cells[-2:] = ["(reference)", "—"]
        lines.append(f"| {env} | {trained} | {measured} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def sweep_commands(root: Path, envs: set[str]) -> list[str]:
    """The ``pathwise train -m`` command of every sweep under ``root`` for ``envs`` (a run
    extended with more seeds has several)."""
    from omegaconf import OmegaConf

    commands = []
    for env in sorted(envs):
        sweep = root / env_key(env)
        for path in sorted(sweep.rglob("multirun.yaml")) if sweep.is_dir() else []:
            overrides = OmegaConf.load(path).hydra.overrides
            commands.append(shlex.join(["pathwise", "train", "-m", *overrides.task,
                                        *overrides.hydra]))
    return commands


def draws_per_state(runs) -> str:
    """How many actions each sampling estimator drew per state in training, from the runs'
    configs: each estimator trains at its own default unless overridden (pathwise 1, score 4
    for its leave-one-out baseline), which a reader comparing variances needs to know."""
    draws: dict[str, set[int]] = {}
    for run in runs:
        if run.estimator != "exact":  # the all-action sum draws nothing
            draws.setdefault(run.estimator, set()).add(int(run.config.estimator.num_samples))
    return "actions drawn per state in training: " + ", ".join(
        f"{name} {' or '.join(map(str, sorted(n)))}" for name, n in sorted(draws.items()))


def write_report(root: Path, out: Path, plan, command: str, seconds: float | None) -> Path:
    from pathwise.analysis import compare

    # A run still training (no policy.pt yet) would enter the table with a mid-training
    # score and fewer steps than its peers, so the report counts finished runs only.
    wanted = {env for env, *_ in plan}
    runs = [r for r in map(compare.load_run, compare.find_runs([root])) if r.env in wanted]
    unfinished = [r.path for r in runs if not (r.path / "policy.pt").is_file()]
    runs = [r for r in runs if r.path not in unfinished]
    if not runs:
        raise SystemExit(f"{root}: no finished runs of {', '.join(sorted(wanted))}")
    if unfinished:
        print(f"report: {len(unfinished)} unfinished runs left out: "
              + ", ".join(str(p) for p in unfinished), file=sys.stderr)
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    rows = compare.summarize(runs, METRIC)
    figures = compare.plot_curves(runs, METRIC, figures_dir)
    for stat in ("variance", "signal_to_noise"):
        try:
            figures += compare.plot_curves(runs, f"grad/*/{stat}", figures_dir)
        except compare.CompareError:
            pass
    header = compare.table_header(rows)
    lines = ["# Pathwise vs score-function actor gradients", "",
             f"SAC, the actor's gradient estimator the only change ({draws_per_state(runs)}); "
             f"{len(runs)} runs. A run's "
             f"score: the mean of its deterministic evaluations (10 episodes each) over the "
             f"last {compare.FINAL_FRACTION:.0%} of its env steps, end included; mean and "
             f"interquartile mean of the scores over seeds with 95% stratified-bootstrap CIs "
             f"(agents/compare.py).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in compare.table_rows(rows)]
    diagnostics = diagnostics_table(runs)
    if diagnostics:
        lines += ["", "## Gradient diagnostics", "",
                  "Every estimator's actor gradient measured on the same states during each run "
                  "(pathwise/analysis/diagnostics.py), averaged over the last 10% of training "
                  "and over seeds, with each statistic's pure-noise floor removed or beside it "
                  "(docs/estimator-facts.md §6): total variance Σ_j Var_j of K estimates; the "
                  "whole gradient's signal-to-noise (‖ḡ‖² − Σ_j Var_j / K) / Σ_j Var_j, 0 for "
                  "a gradient indistinguishable from noise; the median over parameters of "
                  "SNR_j = |ḡ_j| / std_j beside what noise alone shows at this K; the cosine "
                  "of the mean estimate ḡ to the reference gradient (the exact one on "
                  "Discrete, a many-sample pathwise one on Box); and, on Discrete, the bias "
                  "above its floor sqrt(max(0, ‖ḡ − exact‖² − Σ_j Var_j / K)), which adds "
                  "to the floor in quadrature, beside the floor sqrt(Σ_j Var_j / K).", ""]
        lines += diagnostics
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.relative_to(out)})" for p in figures]
    took = f"; {seconds / 3600:.2f} h of sweeps" if seconds else ""
    lines += ["", "## How it was made", "", "```", command, "```", ""]
    sweeps = sweep_commands(root, wanted)
    if sweeps:
        lines += ["The sweeps behind these runs (from each sweep's multirun.yaml):", "", "```"]
        lines += sweeps + ["```", ""]
    lines += [f"- machine: {machine()}",
              f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC{took}",
              f"- runs: `{root}`"]
    report = out / "estimators.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1) + "\n",
                                      encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    extra = raw[raw.index("--") + 1:] if "--" in raw else []
    argv = raw[:raw.index("--")] if "--" in raw else raw
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Arguments after -- are Hydra overrides added to "
                                            "every sweep (e.g. device=cpu hydra.launcher.n_jobs=2)")
    parser.add_argument("--out", type=Path, required=True,
                        help="where estimators.md, summary.json and figures/ go")
    parser.add_argument("--runs", type=Path, help="where the sweeps go (default <out>/runs)")
    parser.add_argument("--only", nargs="+", metavar="ENV", help="env ids to run (default: all)")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="at most N seeds per env (default: the table's 5 or 3)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke pass: {QUICK_STEPS} steps, {QUICK_SEEDS} seeds, small nets")
    parser.add_argument("--launcher", default="basic",
                        help="Hydra launcher: basic (one run at a time, default) | joblib | "
                             "slurm | submitit_local | ray_cluster | ray")
    parser.add_argument("--wandb", default="disabled", choices=("disabled", "offline", "online"),
                        help="wandb.mode of the runs (default disabled)")
    parser.add_argument("--compare-only", action="store_true",
                        help="only aggregate the runs already under --runs")
    args = parser.parse_args(argv)
    args.overrides = extra

    plan = [row for row in TABLE if not args.only or row[0] in args.only]
    if args.only and len(plan) != len(args.only):
        known = ", ".join(row[0] for row in TABLE)
        parser.error(f"--only: unknown env among {args.only}; choose from {known}")
    if args.quick:
        plan = [(env, QUICK_STEPS, QUICK_SEEDS, estimators, QUICK_STEPS // 2)
                for env, _, _, estimators, _ in plan]
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be >= 1, got {args.seeds}")
        plan = [(env, steps, min(seeds, args.seeds), estimators, every)
                for env, steps, seeds, estimators, every in plan]
    root = args.runs or args.out / "runs"
    command = shlex.join(["python", "benchmarks/estimators.py", *raw])
    seconds = None
    if not args.compare_only:
        started = time.perf_counter()
        run_sweeps(plan, root, args)
        seconds = time.perf_counter() - started
    report = write_report(root, args.out, plan, command, seconds)
    print(report.read_text(encoding="utf-8"))
    print(f"wrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
