"""Learning-quality benchmark: final deterministic evaluation return per (agent, estimator, env).

Runs each combination for several seeds, one training at a time (timings stay honest on a
small machine), and prints a table of the final evaluation return (mean of 10 episodes),
median and spread over seeds, with the target from the agents issue where there is one.

    python benchmarks/learning.py                      # the full table (hours on 2 CPU cores)
    python benchmarks/learning.py --only Pendulum-v1   # one env
    python benchmarks/learning.py --seeds 1 --quick    # a 10x shorter smoke pass
    python benchmarks/learning.py --runs runs/learning # keep run dirs; finished ones are reused

Presets from configs/ apply when they exist, exactly as `pathwise train` would use them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

# (agent, estimator, env, steps, target or None)
TABLE = [
    ("sac", "pathwise", "Pendulum-v1", 20_000, -200),
    ("sac", "score", "Pendulum-v1", 20_000, None),
    ("reinforce", "score", "Pendulum-v1", 20_000, None),
    ("sac", "pathwise", "LunarLanderContinuous-v3", 200_000, 200),
    ("sac", "score", "LunarLanderContinuous-v3", 200_000, None),
    ("sac", "pathwise", "HalfCheetah-v5", 100_000, 3000),
    ("sac", "score", "HalfCheetah-v5", 100_000, None),
    ("sac", "pathwise", "CartPole-v1", 50_000, 475),
    ("sac", "exact", "CartPole-v1", 50_000, 475),
    ("sac", "score", "CartPole-v1", 50_000, None),
    ("reinforce", "score", "CartPole-v1", 200_000, 475),
]


def run_one(agent: str, estimator: str, env: str, steps: int, seed: int, root: Path) -> dict:
    from pathwise.training.compose import compose_train
    from pathwise.training.config import as_train_config
    from pathwise.training.loop import train

    run_dir = root / f"{env}-{agent}-{estimator}-s{seed}".replace("/", "-")
    if not run_dir.exists():
        overrides = [f"agent={agent}", f"estimator={estimator}", f"env={env}", f"seed={seed}",
                     f"total_steps={steps}", "wandb.mode=disabled", "device=cpu",
                     f"run_dir={run_dir}"]
        train(as_train_config(compose_train(overrides)[0]))
    # One reading for a run trained now and one found there: the same numbers either way.
    return {"agent": agent, "estimator": estimator, "env": env, "steps": steps, "seed": seed,
            **finished_run(run_dir, steps)}


def finished_run(run_dir: Path, steps: int) -> dict:
    """A finished run's final evaluation and training time (its metrics' clock), read from
    its run dir; with --runs this is what lets adding seeds skip the runs already there.
    Anything else in its place stops the benchmark (a run is never overwritten)."""
    from pathwise.training.tracking import read_metrics

    metrics = run_dir / "metrics.jsonl"
    final = [r for r in (read_metrics(metrics) if metrics.is_file() else [])
             if r.get("global_step") == steps and "eval/return_mean" in r]
    if not (run_dir / "policy.pt").is_file() or not final:
        sys.exit(f"learning.py: {run_dir} holds no finished {steps:,}-step run; finish it with "
                 f"`pathwise train resume={run_dir}` (same budget) or move it away")
    return {"return": final[-1]["eval/return_mean"], "seconds": final[-1]["time"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="env ids to run (default: all)")
    parser.add_argument("--agents", nargs="*", help="agent-estimator pairs, e.g. sac-pathwise")
    parser.add_argument("--quick", action="store_true", help="10x fewer steps (smoke pass)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--runs", type=Path,
                        help="keep each run's dir under here (default: a temporary dir); a "
                             "finished run found there is read, not trained again")
    args = parser.parse_args(argv)

    rows = [r for r in TABLE if (not args.only or r[2] in args.only)
            and (not args.agents or f"{r[0]}-{r[1]}" in args.agents)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.runs or Path(tmp)
        for agent, estimator, env, steps, target in rows:
            steps = steps // 10 if args.quick else steps
            for seed in range(args.seeds):
                res = run_one(agent, estimator, env, steps, seed, root)
                res["target"] = target
                results.append(res)
                print(f"  {agent}-{estimator} {env} seed {seed}: {res['return']:.1f} "
                      f"({res['seconds']:.0f} s)", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


def table(results: list[dict]) -> str:
    lines = ["| agent | estimator | env | steps | final eval return: median [min, max] | seeds "
             "| target | minutes/run (median) |", "|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in results:
        key = (r["agent"], r["estimator"], r["env"], r["steps"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        group = [r for r in results if (r["agent"], r["estimator"], r["env"], r["steps"]) == key]
        returns = [r["return"] for r in group]
        target = group[0]["target"]
        met = "" if target is None else (" ✓" if statistics.median(returns) >= target else " ✗")
        minutes = statistics.median(r["seconds"] for r in group) / 60
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]:,} | "
                     f"{statistics.median(returns):.1f} [{min(returns):.1f}, {max(returns):.1f}] "
                     f"| {len(group)} | {'—' if target is None else target}{met} | {minutes:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
