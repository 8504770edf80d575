"""The headline comparison: four families of policy-gradient estimator on differentiable tasks.

One question, how ∇θ E[return] is estimated, answered four ways, on the same torch envs and
the same seeds:

    family                    agent       the actor's gradient
    score function            reinforce   Σ ∇ log π(a|s) (G − b): no derivative of anything
    pathwise, critic          sac         ∇a Q(s, a) through a learned critic (SVG(0))
    pathwise, model + critic  shac        through H steps of the dynamics, then ∇s V(s_H)
    pathwise, model           apg         through H steps of the dynamics (BPTT)

For each (env, agent, seed) one training run (presets apply as in `pathwise train`), one at a
time so that wall-clock numbers stay honest on a small machine; every run is evaluated every
``eval_every`` env steps on the evaluation env (Gymnasium's own Pendulum-v1 for the torch
port). The table: final return (IQM over seeds with a 95 % stratified-bootstrap CI,
``pathwise.analysis.compare``), how many seeds reached the threshold, the env steps and the
training wall-clock (the run's own clock, evaluations included) at the first evaluation at or
above it, and the gradient variance along training:

* sac, reinforce: the run's own diagnostics (``diagnostics.every``: ``grad/pathwise/variance``
  of SAC's critic-pathwise actor gradient, ``grad/score/variance`` of REINFORCE's);
* apg, shac: the run is trained in segments of ``measure_every`` steps (resumed exactly from
  its checkpoint, so the run is the one an uninterrupted training gives, and the measurement
  is off its clock), and after each segment ``pathwise.analysis.horizon.gradient_samples``
  draws K estimates of the model-pathwise gradient of the agent's H-step return at the
  current policy (``gradients.jsonl`` in the run dir).

Each family's variance is of its own estimator of its own objective: the numbers say how each
evolves during training, not which is smaller.

    python benchmarks/families.py --out runs/families        # Pendulum and PointMass, 3 seeds
    python benchmarks/families.py --out DIR --only pathwise/Pendulum-v1 --seeds 3
    python benchmarks/families.py --out DIR --agents shac apg --quick       # 10x fewer steps

Finished runs found under ``<out>/runs`` are read, not trained again. The report
(``families.md``, ``families.json``) gives the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pathwise.training.runtime import describe_machine, load_average


@dataclass
class Task:
    threshold: float  # on the evaluation env
    eval_every: int
    measure_every: int  # env steps between gradient measurements (apg, shac)
    budgets: dict  # agent -> env steps
    overrides: dict = field(default_factory=dict)  # agent -> extra `pathwise train` overrides
    evals: dict = field(default_factory=dict)  # agent -> its own eval_every


# SAC on pathwise/Pendulum-v1 runs its preset (8 envs, 64x64, 10k steps), evaluated every 2,000
# steps as the preset does; on PointMass, which has no SAC preset, the same settings are given
# explicitly. REINFORCE collects with 16 envs (its batch is 2,000 steps either way).
SAC_TORCH_ENV = ["num_envs=8", "agent.hidden_sizes=[64,64]", "agent.lr=0.001",
                 "agent.alpha_lr=0.001", "agent.learning_starts=1000",
                 "agent.updates_per_step=0.5"]
PLAN = {
    "pathwise/Pendulum-v1": Task(
        threshold=-200, eval_every=10_000, measure_every=50_000,
        budgets={"reinforce": 300_000, "sac": 10_000, "shac": 300_000, "apg": 300_000},
        overrides={"reinforce": ["num_envs=16"]}, evals={"sac": 2000}),
    "pathwise/PointMass-v0": Task(
        threshold=-30, eval_every=10_000, measure_every=20_000,
        budgets={"reinforce": 200_000, "sac": 10_000, "shac": 100_000, "apg": 100_000},
        overrides={"sac": SAC_TORCH_ENV, "reinforce": ["num_envs=16"]}, evals={"sac": 2000}),
    "pathwise/DoublePendulum-v0": Task(
        threshold=60, eval_every=20_000, measure_every=100_000,
        budgets={"reinforce": 500_000, "sac": 50_000, "shac": 500_000, "apg": 500_000},
        overrides={"sac": SAC_TORCH_ENV, "reinforce": ["num_envs=16"]}, evals={"sac": 5000}),
}
DEFAULT_ENVS = ("pathwise/Pendulum-v1", "pathwise/PointMass-v0")  # DoublePendulum: --only
FAMILIES = {"reinforce": ("score", "score function"), "sac": ("pathwise", "pathwise, critic"),
            "shac": ("pathwise", "pathwise, model + critic"),
            "apg": ("pathwise", "pathwise, model")}
MODEL_BASED = ("shac", "apg")
GRADIENT_SAMPLES, GRADIENT_BATCH = 16, 8  # K estimates of M trajectories per measurement


def run_dir_for(root: Path, env: str, agent: str, seed: int) -> Path:
    return root / "runs" / env.replace("/", "-") / f"{agent}-s{seed}"


def finished(run_dir: Path, steps: int) -> bool:
    from pathwise.training.tracking import read_metrics

    metrics = run_dir / "metrics.jsonl"
    return (run_dir / "policy.pt").is_file() and metrics.is_file() and any(
        r.get("global_step", 0) >= steps and "eval/return_mean" in r
        for r in read_metrics(metrics))


def train_segment(overrides: list[str]) -> None:
    from pathwise.training.compose import compose_train
    from pathwise.training.config import as_train_config
    from pathwise.training.loop import train

    train(as_train_config(compose_train(overrides)[0]))


def measure_model_gradient(run_dir: Path, env: str, seed: int) -> dict:
    """K estimates of the model-pathwise gradient of the agent's H-step return at the saved
    policy, from reset states (``pathwise.analysis.horizon``)."""
    import torch

    from pathwise import load_policy
    from pathwise.analysis.diagnostics import gradient_stats
    from pathwise.analysis.horizon import gradient_samples
    from pathwise.training.tracking import read_metrics

    policy = load_policy(run_dir).double()
    step = max(r["global_step"] for r in read_metrics(run_dir / "metrics.jsonl"))
    horizon = int(_config(run_dir)["agent"]["horizon"])
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        grads = gradient_samples(env, policy, horizon, "pathwise", GRADIENT_SAMPLES,
                                 GRADIENT_BATCH, seed=seed * 1_000_003 + step)
    stats = gradient_stats("model_pathwise", grads)
    return {"global_step": step, "horizon": horizon, "seconds": time.perf_counter() - started,
            **stats.metrics()}


def _config(run_dir: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))


def run_one(root: Path, env: str, agent: str, seed: int, steps: int, task: Task,
            quick: bool) -> Path:
    """Train (unless finished) one run; returns its run dir."""
    run_dir = run_dir_for(root, env, agent, seed)
    if finished(run_dir, steps):
        return run_dir
    if run_dir.exists():
        sys.exit(f"families.py: {run_dir} holds an unfinished run: finish it with `pathwise "
                 f"train resume={run_dir} total_steps={steps}` or move it away")
    measure_every = task.measure_every // (10 if quick else 1)
    eval_every = task.evals.get(agent, task.eval_every) // (10 if quick else 1)
    base = [f"agent={agent}", f"env={env}", f"seed={seed}", "wandb.mode=disabled",
            "device=cpu", "torch_threads=1", f"eval_every={eval_every}", f"run_dir={run_dir}",
            *task.overrides.get(agent, [])]
    if agent not in MODEL_BASED:  # the run's own diagnostics, about 5 times per run
        train_segment([*base, f"total_steps={steps}", f"diagnostics.every={steps // 5}"])
        return run_dir
    for i, mark in enumerate(range(measure_every, steps + measure_every, measure_every)):
        mark = min(mark, steps)
        if i == 0:
            train_segment([*base, f"total_steps={mark}"])
        elif mark > _reached(run_dir):
            train_segment([f"resume={run_dir}", f"total_steps={mark}"])
        else:
            continue
        record = measure_model_gradient(run_dir, env, seed)
        with open(run_dir / "gradients.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
    return run_dir


def _reached(run_dir: Path) -> int:
    from pathwise.training.tracking import read_metrics

    return max(r["global_step"] for r in read_metrics(run_dir / "metrics.jsonl"))


# -- the table ------------------------------------------------------------------------------
def summarize(root: Path, plan: dict, seeds: list[int], agents: list[str],
              quick: bool = False) -> list[dict]:
    from pathwise.analysis import compare
    from pathwise.training.tracking import read_metrics

    rows = []
    for env, task in plan.items():
        for agent in agents:
            dirs = [run_dir_for(root, env, agent, s) for s in seeds]
            dirs = [d for d in dirs if (d / "metrics.jsonl").is_file()]
            if not dirs:
                continue
            runs = [compare.load_run(d) for d in dirs]
            (summary,) = compare.summarize(runs, "eval/return_mean")
            hits, totals, variances = [], [], []
            for d in dirs:
                records = read_metrics(d / "metrics.jsonl")
                evals = [r for r in records if "eval/return_mean" in r]
                hit = next((r for r in evals if r["eval/return_mean"] >= task.threshold), None)
                hits.append(hit)
                totals.append(max(r["time"] for r in records))
                variances.append(_variance_series(d, agent, records))
            reached = [h for h in hits if h is not None]
            first = [v[0] for v in variances if v]
            last = [v[-1] for v in variances if v]
            rows.append({
                "env": env, "eval_env": _config(dirs[0]).get("eval_env") or _eval_env(env),
                "agent": agent, "family": FAMILIES[agent][1],
                "budget": task.budgets[agent] // (10 if quick else 1),
                "threshold": task.threshold, "seeds": [r.seed for r in runs],
                "scores": summary.scores, "iqm": summary.iqm, "iqm_ci": list(summary.iqm_ci),
                "reached": len(reached), "steps_to_threshold":
                    statistics.median(h["global_step"] for h in reached) if reached else None,
                "seconds_to_threshold":
                    statistics.median(h["time"] for h in reached) if reached else None,
                "seconds_total": statistics.median(totals),
                "gradient": _gradient_name(agent),
                "variance_first": statistics.median(first) if first else None,
                "variance_last": statistics.median(last) if last else None})
    return rows


def _eval_env(env: str) -> str:
    from pathwise.envs import GYMNASIUM_ORIGINALS

    return GYMNASIUM_ORIGINALS.get(env, env)


def _gradient_name(agent: str) -> str:
    return {"reinforce": "grad/score", "sac": "grad/pathwise (critic)",
            "shac": "model pathwise, H-step return", "apg": "model pathwise, H-step return"}[agent]


def _variance_series(run_dir: Path, agent: str, records: list[dict]) -> list[float]:
    if agent in MODEL_BASED:
        path = run_dir / "gradients.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line)["grad/model_pathwise/variance"]
                for line in path.read_text().splitlines() if line.strip()]
    key = f"grad/{FAMILIES[agent][0]}/variance"
    return [r[key] for r in records if key in r]


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(rows: list[dict]) -> str:
    lines = ["| env (evaluated on) | family | agent | env steps | final return, IQM [95% CI] "
             "| seeds ≥ threshold | env steps to threshold | seconds to threshold | seconds "
             "per run | gradient variance, first → last measurement |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["iqm_ci"]
        lines.append(
            f"| {r['env']} ({r['eval_env']}) | {r['family']} | {r['agent']} | {r['budget']:,} "
            f"| {r['iqm']:.1f} [{low:.1f}, {high:.1f}] | {r['reached']}/{len(r['seeds'])} "
            f"(≥ {r['threshold']:g}) | {fmt(r['steps_to_threshold'])} | "
            f"{fmt(r['seconds_to_threshold'])} | {fmt(r['seconds_total'])} | "
            f"{fmt(r['variance_first'])} → {fmt(r['variance_last'])} ({r['gradient']}) |")
    return "\n".join(lines)






def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="runs and report go here")
    parser.add_argument("--seeds", type=int, default=3)
    others = ", ".join(sorted(set(PLAN) - set(DEFAULT_ENVS)))
    parser.add_argument("--only", nargs="*",
                        help=f"env ids (default: {', '.join(DEFAULT_ENVS)}; also {others})")
    parser.add_argument("--agents", nargs="*", default=list(FAMILIES),
                        choices=list(FAMILIES), help="agents (default: all four)")
    parser.add_argument("--quick", action="store_true", help="10x fewer steps (smoke pass)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    plan = {env: task for env, task in PLAN.items() if env in (args.only or DEFAULT_ENVS)}
    unknown = set(args.only or ()) - set(PLAN)
    if unknown:
        parser.error(f"unknown env {sorted(unknown)}; choose from {', '.join(PLAN)}")
    seeds = list(range(args.seeds))
    command = "python " + shlex.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    started, load_start = time.perf_counter(), load_average()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for env, task in plan.items():
        for agent in args.agents:
            steps = task.budgets[agent] // (10 if args.quick else 1)
            for seed in seeds:
                t = time.perf_counter()
                run_dir = run_one(args.out, env, agent, seed, steps, task, args.quick)
                print(f"  {env} {agent} seed {seed}: {time.perf_counter() - t:.0f} s "
                      f"({run_dir})", file=sys.stderr, flush=True)
    rows = summarize(args.out, plan, seeds, args.agents, args.quick)
    report = table(rows)
    header = (f"Command: `{command}`  \nDate: {date}; {time.perf_counter() - started:.0f} s in "
              f"all  \nMachine: {describe_machine()}; load average at the start {load_start}, "
              f"at the end {load_average()}\n")
    (args.out / "families.md").write_text(f"# Four estimator families\n\n{header}\n{report}\n",
                                          encoding="utf-8")
    summary = {"command": command, "date": date, "machine": describe_machine(), "rows": rows}
    (args.out / "families.json").write_text(json.dumps(summary, indent=1) + "\n",
                                            encoding="utf-8")
    print(header)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
