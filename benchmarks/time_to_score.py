"""Wall-clock to a score: pathwise on its torch envs against Stable-Baselines3 with rl-zoo3's
tuned hyperparameters on Gymnasium's envs, both scored on Gymnasium's env.

    python benchmarks/time_to_score.py                      # Pendulum and CartPole, 3 seeds
    python benchmarks/time_to_score.py --tasks Pendulum --seeds 1
    python benchmarks/time_to_score.py --device cuda        # pathwise on the GPU

Each run is a fresh subprocess, timed whole (interpreter start, imports, env and network
construction, training, every evaluation), and the two libraries alternate (pathwise seed 0,
SB3 seed 0, pathwise seed 1, ...) so that a change in the machine's load hits both alike. Both
evaluate every ``--eval-every`` env steps with 10 deterministic episodes of Gymnasium's env
and stop at the first evaluation that reaches the threshold; a run that never reaches it runs
its whole budget and counts as not reaching it. Each library runs with its own defaults
(threads included: pathwise the cores idle at its start, SB3 torch's default).

- Pendulum (≥ −200): pathwise SAC with the ``sac/pathwise-Pendulum-v1`` preset on
  ``pathwise/Pendulum-v1`` against SB3's SAC with rl-zoo3's Pendulum-v1 hyperparameters
  (learning rate 1e-3, 20k steps).
- CartPole (≥ 475): pathwise discrete SAC with the ``sac/pathwise-CartPole-v1`` preset on
  ``pathwise/CartPole-v1`` against SB3's DQN with rl-zoo3's CartPole-v1 hyperparameters (SB3's
  SAC has no discrete actions; DQN is the zoo's off-policy agent for CartPole).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS = {
    "Pendulum": {"gym": "Pendulum-v1", "torch": "pathwise/Pendulum-v1", "threshold": -200.0,
                 "sb3": "sac", "sb3_steps": 20_000},
    "CartPole": {"gym": "CartPole-v1", "torch": "pathwise/CartPole-v1", "threshold": 475.0,
                 "sb3": "dqn", "sb3_steps": 50_000},
    # Not in the list: pathwise's other CartPole preset, the score function.
    "CartPole-reinforce": {"gym": "CartPole-v1", "torch": "pathwise/CartPole-v1",
                           "threshold": 475.0, "sb3": "dqn", "sb3_steps": 50_000,
                           "agent": "Reinforce"},
}
# rl-baselines3-zoo, hyperparams/sac.yml (Pendulum-v1) and dqn.yml (CartPole-v1).
ZOO = {
    "sac": {"learning_rate": 1e-3},
    "dqn": {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
            "learning_starts": 1000, "gamma": 0.99, "target_update_interval": 10,
            "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
            "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]}},
}
EPISODES = 10


# -- the workers: one run each, in a subprocess ---------------------------------------------
def run_pathwise(task: dict, seed: int, eval_every: int, device: str, out: Path,
                 overrides: dict) -> dict:
    import pathwise

    agent = getattr(pathwise, task.get("agent", "SAC"))
    model = agent(task["torch"], seed=seed, eval_every=eval_every, eval_episodes=EPISODES,
                device=device, wandb="disabled", run_dir=out / "run", **overrides)
    reached = {}

    def stop_at_threshold(step, info):
        if info["event"] == "eval" and "step" not in reached:
            if info["return_mean"] >= task["threshold"]:
                reached.update(step=step, score=info["return_mean"])
                return False
        return None

    budget = model.config.total_steps
    model.learn(budget, callback=stop_at_threshold)
    final = model.result.final_eval.return_mean if model.result.final_eval else None
    return {"reached_step": reached.get("step"), "score": reached.get("score", final),
            "budget": budget}


def run_sb3(task: dict, seed: int, eval_every: int, device: str, out: Path,
            overrides: dict) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN, SAC
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.monitor import Monitor

    algo = {"sac": SAC, "dqn": DQN}[task["sb3"]]
    model = algo("MlpPolicy", task["gym"], seed=seed, device=device, verbose=0,
                 **ZOO[task["sb3"]])
    stop = StopTrainingOnRewardThreshold(reward_threshold=task["threshold"], verbose=0)
    evaluate = EvalCallback(Monitor(gym.make(task["gym"])), eval_freq=eval_every,
                            n_eval_episodes=EPISODES, deterministic=True,
                            callback_on_new_best=stop, verbose=0)
    model.learn(task["sb3_steps"], callback=evaluate)
    reached = evaluate.best_mean_reward >= task["threshold"]
    return {"reached_step": int(model.num_timesteps) if reached else None,
            "score": float(evaluate.best_mean_reward), "budget": task["sb3_steps"]}


def worker(args) -> None:
    task = TASKS[args.task]
    run = run_pathwise if args.library == "pathwise" else run_sb3
    with tempfile.TemporaryDirectory() as tmp:
        result = run(task, args.seed, args.eval_every, args.device, Path(tmp),
                     json.loads(args.overrides))
    print("RESULT " + json.dumps(result))


# -- the driver -----------------------------------------------------------------------------
def timed_run(library: str, task: str, seed: int, args) -> dict:
    from pathwise.training.runtime import environ_for_other_libraries

    cmd = [sys.executable, __file__, "--worker", library, "--task", task, "--seed", str(seed),
           "--eval-every", str(args.eval_every), "--device", args.device,
           "--overrides", json.dumps(dict(_pair(s) for s in args.set))]
    # SB3's side runs in its users' environment, without what `import pathwise` set here.
    environ = environ_for_other_libraries() if library == "sb3" else os.environ
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**environ, "PYTHONHASHSEED": "0"})
    seconds = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{library} {task} seed {seed} failed:\n{proc.stderr[-2000:]}")
    return {**json.loads(lines[-1][7:]), "seconds": seconds}


def _pair(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def machine() -> str:
    from pathwise.training.runtime import describe_machine, load_average

    return f"{describe_machine()}; load average {load_average()} at the start"


def describe(runs: list[dict]) -> str:
    reached = [r for r in runs if r["reached_step"] is not None]
    if not reached:
        return f"not reached in {len(runs)} runs (best {max(r['score'] for r in runs):.1f})"
    seconds = statistics.median(r["seconds"] for r in reached)
    steps = statistics.median(r["reached_step"] for r in reached)
    return f"{seconds:.1f} s, {steps:,.0f} steps ({len(reached)}/{len(runs)} reached)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["Pendulum", "CartPole"],
                        choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=("pathwise", "sb3"), help="run one library only")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="pathwise hyperparameters on top of the preset, e.g. num_envs=1024 "
                             "(values parsed as JSON where they can be)")
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("pathwise", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(argparse.Namespace(library=args.worker, task=args.task, seed=args.seed,
                                  eval_every=args.eval_every, device=args.device,
                                  overrides=args.overrides))
        return
    libraries = (args.only,) if args.only else ("pathwise", "sb3")
    print(f"machine: {machine()}; device {args.device}; {time.strftime('%Y-%m-%d')}"
          + (f"; pathwise with {' '.join(args.set)}" if args.set else ""))
    rows = []
    for task in args.tasks:
        runs = {"pathwise": [], "sb3": []}
        for seed in range(args.seeds):
            for library in libraries:
                result = timed_run(library, task, seed, args)
                runs[library].append(result)
                print(f"  {task} {library} seed {seed}: {json.dumps(result)}", flush=True)
        describe_or_skip = {k: describe(v) if v else "not run" for k, v in runs.items()}
        ratio = [s["seconds"] / p["seconds"] for p, s in zip(runs["pathwise"], runs["sb3"])
                 if p["reached_step"] is not None and s["reached_step"] is not None]
        rows.append((task, describe_or_skip["pathwise"], describe_or_skip["sb3"],
                     f"{statistics.median(ratio):.2f}×" if ratio else "-"))
    print()
    print("| task (threshold) | pathwise, torch env | SB3 (rl-zoo3), Gymnasium env | "
          "SB3 time / pathwise time (median of pairs) |")
    print("|---|---|---|---|")
    for task, ours, theirs, ratio in rows:
        print(f"| {task} (≥ {TASKS[task]['threshold']:g}) | {ours} | {theirs} | {ratio} |")


if __name__ == "__main__":
    main()
