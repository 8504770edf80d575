"""Throughput benchmark: pathwise against Stable-Baselines3 at equal hyperparameters.

SAC (pathwise) vs SAC (SB3) on Pendulum-v1 and HalfCheetah-v5, then REINFORCE (pathwise) vs
A2C (SB3) on CartPole-v1 with 8 envs. Every run is a fresh subprocess (so its peak RSS is its
own), and the two libraries alternate, A B A B …, so that a change in the machine's load hits
both sides alike; the ratio is taken per pair and its median reported.

    python benchmarks/throughput.py                    # the full table
    python benchmarks/throughput.py --quick            # short runs: a smoke pass
    python benchmarks/throughput.py --envs HalfCheetah-v5 --steps 3000 --pairs 3

What is equal on both sides (SAC): 256×256 MLPs for actor and both critics, batch 256, replay
buffer size, learning_starts (uniform random actions before it), one gradient update per env
step, Adam at lr 3e-4 for actor, critics and α, α starting at 0.2 and tuned to the entropy
target −dim(A), γ = 0.99, τ = 0.005, one env, the same device and torch thread count (set in
each subprocess before anything runs). What is measured: env steps per second from the first
update to the last step (``steps/s``; every one of these steps collects one transition and
makes one full SAC update), with each library's own per-step work included: acting, the env,
storing, sampling, the update, and its own loop bookkeeping and logging. pathwise runs through
its public API (``pathwise.train`` with a ``TrainConfig``, wandb disabled, metrics logged
every 1,000 steps, no evaluation or checkpoint inside the timed loop). Not timed: imports,
construction, and the final evaluation, which is the same code for both (``evaluate`` below:
deterministic actions, episode i reset with seed 10_000 + i), so the returns compare.

Peak RSS is each subprocess's own high-water mark (``ru_maxrss``), imports included.

``--threads 0`` runs each library as users run it: torch's thread default for SB3, pathwise's
(``torch_threads=0``: the idle cores) and its final 10-episode evaluation inside ``train``.
Every run's whole-process wall clock (interpreter start to exit, ``process_s``) is reported
beside the per-step speed.

    python benchmarks/throughput.py --envs HalfCheetah-v5 --steps 4000 --no-pg --threads 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAC_ENVS = ("Pendulum-v1", "HalfCheetah-v5")
PG_ENV, PG_NUM_ENVS = "CartPole-v1", 8
EVAL_SEED = 10_000


# -- what both sides share -----------------------------------------------------------------
def evaluate(predict, env_id: str, episodes: int) -> float:
    """Mean return of ``episodes`` deterministic episodes; ``predict(obs) -> action`` in the
    env's own units (both libraries' ``predict`` protocol)."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(predict(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return statistics.fmean(returns)


class Clock:
    """Marks taken by each library's per-step callback: when env step ``start`` was reached
    (the first update) and when the last step was, on the wall clock and on this process's
    CPU clock (which a busy machine's other jobs do not advance)."""

    def __init__(self, start: int, total: int):
        self.start, self.total = start, total
        self.first = self.at_start = self.end = None

    def tick(self, step: int) -> None:
        # Reads the clocks three times in a run, so that timing costs the loop nothing.
        if self.first is None:
            self.first = self.now()
        if self.at_start is None and step >= self.start:
            self.at_start = self.now()
        if step >= self.total:
            self.end = self.now()

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def result(self, first_step: int) -> dict:
        """``steps_per_s`` over the update phase (wall clock), ``steps_per_cpu_s`` the same
        per CPU second, ``all_steps_per_s`` over the whole loop."""
        n = self.total - self.start
        return {"steps_per_s": n / (self.end[0] - self.at_start[0]),
                "steps_per_cpu_s": n / (self.end[1] - self.at_start[1]),
                "all_steps_per_s": (self.total - first_step) / (self.end[0] - self.first[0])}


# -- the workers: one run each, in a subprocess ---------------------------------------------
def pathwise_sac(args) -> dict:
    from pathwise.agents.sac import SACConfig
    from pathwise.training.config import TrainConfig, WandbConfig
    from pathwise.training.loop import train

    agent = SACConfig(lr=3e-4, alpha_lr=3e-4, batch_size=args.batch_size,
                      buffer_size=args.buffer_size, learning_starts=args.learning_starts,
                      hidden_sizes=[256, 256], alpha=0.2, gamma=0.99, tau=0.005)
    clock = Clock(args.learning_starts + 1, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(env=args.env, agent=agent, seed=args.seed, total_steps=args.steps,
                          device=args.device, run_dir=str(Path(tmp) / "run"), eval_every=0,
                          eval_episodes=10 if args.threads == 0 else 1, checkpoint_every=0,
                          log_every=1000, torch_threads=args.threads,
                          wandb=WandbConfig(mode="disabled"), **_compile_options(args))
        result = train(cfg, progress=lambda step, info: clock.tick(step))
        policy = _load_policy(result.run_dir / "policy.pt", args.device)
    out = clock.result(first_step=1)
    out["return"] = evaluate(lambda obs: policy.predict(obs)[0], args.env, args.eval_episodes)
    return out


def sb3_sac(args) -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    clock = Clock(args.learning_starts + 1, args.steps)

    class Tick(BaseCallback):
        def _on_step(self) -> bool:
            clock.tick(self.num_timesteps)
            return True

    model = SAC("MlpPolicy", args.env, learning_rate=3e-4, buffer_size=args.buffer_size,
                learning_starts=args.learning_starts, batch_size=args.batch_size, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto_0.2",
                policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, device=args.device,
                verbose=0)
    model.learn(args.steps, callback=Tick())
    out = clock.result(first_step=1)
    out["return"] = evaluate(lambda obs: model.predict(obs, deterministic=True)[0], args.env,
                             args.eval_episodes)
    return out


def pathwise_reinforce(args) -> dict:
    from pathwise.agents.reinforce import ReinforceConfig
    from pathwise.training.config import EstimatorConfig, TrainConfig, WandbConfig
    from pathwise.training.loop import train

    # configs/preset/reinforce/CartPole-v1.yaml
    agent = ReinforceConfig(lr=1e-3, batch_steps=2000, hidden_sizes=[64, 64])
    clock = Clock(PG_NUM_ENVS, args.steps)  # the first vector step: 8 env steps
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(env=args.env, agent=agent, estimator=EstimatorConfig(name="score"),
                          seed=args.seed, total_steps=args.steps, num_envs=PG_NUM_ENVS,
                          device=args.device, run_dir=str(Path(tmp) / "run"), eval_every=0,
                          eval_episodes=1, checkpoint_every=0, log_every=1000,
                          torch_threads=args.threads, wandb=WandbConfig(mode="disabled"))
        train(cfg, progress=lambda step, info: clock.tick(step))
    return clock.result(first_step=PG_NUM_ENVS)


def sb3_a2c(args) -> dict:
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    clock = Clock(PG_NUM_ENVS, args.steps)  # the first vector step: 8 env steps

    class Tick(BaseCallback):
        def _on_step(self) -> bool:
            clock.tick(self.num_timesteps)
            return True

    envs = make_vec_env(args.env, n_envs=PG_NUM_ENVS, seed=args.seed)
    model = A2C("MlpPolicy", envs, seed=args.seed, device=args.device, verbose=0)
    model.learn(args.steps, callback=Tick())
    return clock.result(first_step=PG_NUM_ENVS)


def _compile_options(args) -> dict:
    return {"compile": True} if args.compile else {}


def _load_policy(path: Path, device: str):
    from pathwise.training.checkpoint import load_policy

    return load_policy(path, device=device)


WORKERS = {"pathwise-sac": pathwise_sac, "sb3-sac": sb3_sac,
           "pathwise-reinforce": pathwise_reinforce, "sb3-a2c": sb3_a2c}


def worker(args) -> None:
    if args.worker.startswith("pathwise"):
        import pathwise  # noqa: F401  (before torch, as the `pathwise` command imports it)
    import torch

    if args.threads > 0:  # 0: each library's own default
        torch.set_num_threads(args.threads)
    out = WORKERS[args.worker](args)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


# -- the parent: alternate A B A B, each run in a fresh process ------------------------------
def run(kind: str, env: str, args, steps: int, learning_starts: int) -> dict:
    from pathwise.training.runtime import environ_for_other_libraries

    cmd = [sys.executable, __file__, "--worker", kind, "--env", env, "--steps", str(steps),
           "--learning-starts", str(learning_starts), "--threads", str(args.threads),
           "--device", args.device, "--seed", str(args.seed), "--batch-size",
           str(args.batch_size), "--buffer-size", str(args.buffer_size), "--eval-episodes",
           str(args.eval_episodes)] + (["--compile"] if args.compile else [])
    started = time.perf_counter()
    # SB3's side runs in its users' environment, without what `import pathwise` set here.
    environ = environ_for_other_libraries() if kind.startswith("sb3") else os.environ
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**environ, "WANDB_MODE": "disabled"})
    process_s = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{kind} on {env} failed (exit {proc.returncode})")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": process_s}


def compare(a: str, b: str, env: str, args, steps: int, learning_starts: int,
            with_return: bool) -> dict:
    pairs = []
    for i in range(args.pairs):
        ra = run(a, env, args, steps, learning_starts)
        rb = run(b, env, args, steps, learning_starts)
        ratio = ra["steps_per_s"] / rb["steps_per_s"]
        cpu_ratio = ra["steps_per_cpu_s"] / rb["steps_per_cpu_s"]
        pairs.append({a: ra, b: rb, "ratio": ratio, "cpu_ratio": cpu_ratio,
                      "process_ratio": rb["process_s"] / ra["process_s"]})
        ret = (f"  return {ra['return']:9.1f} vs {rb['return']:9.1f}" if with_return else "")
        print(f"  {env} pair {i + 1}: {a} {ra['steps_per_s']:7.1f} steps/s, {b} "
              f"{rb['steps_per_s']:7.1f} steps/s, ratio {ratio:.2f} (CPU time {cpu_ratio:.2f}); "
              f"whole process {ra['process_s']:.1f} s vs {rb['process_s']:.1f} s{ret}",
              file=sys.stderr, flush=True)
    return {"env": env, "a": a, "b": b, "steps": steps, "learning_starts": learning_starts,
            "pairs": pairs, "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "median_cpu_ratio": statistics.median(p["cpu_ratio"] for p in pairs),
            "median_process_ratio": statistics.median(p["process_ratio"] for p in pairs)}


def table(results: list[dict]) -> str:
    """One row per run pair and one per comparison's medians (markdown)."""
    lines = ["| env | A vs B | steps (learning_starts) | pair | A steps/s | B steps/s | A/B | "
             "A/B by CPU time | A whole process s | B whole process s | B/A whole process | "
             "A peak RSS MB | B peak RSS MB | A return | B return |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def returns(run: dict) -> str:
        return f"{run['return']:.1f}" if "return" in run else "—"

    for res in results:
        a, b, pairs = res["a"], res["b"], res["pairs"]
        name = f"| {res['env']} | {a} vs {b} | {res['steps']:,} ({res['learning_starts']:,}) |"
        for i, p in enumerate(pairs):
            lines.append(f"{name} {i + 1} | {p[a]['steps_per_s']:.1f} | "
                         f"{p[b]['steps_per_s']:.1f} | {p['ratio']:.2f} | {p['cpu_ratio']:.2f} | "
                         f"{p[a]['process_s']:.1f} | {p[b]['process_s']:.1f} | "
                         f"{p['process_ratio']:.2f} | "
                         f"{p[a]['peak_rss_mb']:.0f} | {p[b]['peak_rss_mb']:.0f} | "
                         f"{returns(p[a])} | {returns(p[b])} |")
        med = {(key, side): statistics.median(p[side][key] for p in pairs)
               for key in ("steps_per_s", "peak_rss_mb", "process_s") for side in (a, b)}
        lines.append(f"{name} **median** | {med['steps_per_s', a]:.1f} | "
                     f"{med['steps_per_s', b]:.1f} | **{res['median_ratio']:.2f}** | "
                     f"{res['median_cpu_ratio']:.2f} | {med['process_s', a]:.1f} | "
                     f"{med['process_s', b]:.1f} | **{res['median_process_ratio']:.2f}** | "
                     f"{med['peak_rss_mb', a]:.0f} | {med['peak_rss_mb', b]:.0f} | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="*", default=list(SAC_ENVS),
                        help="SAC envs (default: Pendulum-v1 HalfCheetah-v5)")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per SAC run")
    parser.add_argument("--learning-starts", type=int, default=1000,
                        help="random steps before the first update (SAC)")
    parser.add_argument("--pg-steps", type=int, default=40_000,
                        help="env steps per REINFORCE / A2C run (summed over the 8 envs)")
    parser.add_argument("--no-pg", action="store_true", help="skip REINFORCE vs A2C")
    parser.add_argument("--pairs", type=int, default=3, help="A B pairs per comparison")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, both sides (0: each library's default)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda, both sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    parser.add_argument("--eval-episodes", type=int, default=5,
                        help="deterministic episodes of the final evaluation (SAC)")
    parser.add_argument("--compile", action="store_true", help="pathwise with compile=true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke pass: 1,500 SAC steps (500 random), 8,000 REINFORCE/A2C "
                             "steps, 2 evaluation episodes")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.steps, args.learning_starts, args.pg_steps = 1500, 500, 8000
        args.eval_episodes = min(args.eval_episodes, 2)
    if args.learning_starts < args.batch_size or args.steps <= args.learning_starts:
        parser.error("need batch-size <= learning-starts < steps")

    from pathwise.training.runtime import describe_machine, load_average

    threads = args.threads or "each library's default"
    print(f"# {describe_machine(args.device)}; load average {load_average()}; device "
          f"{args.device}, torch threads {threads}, {args.pairs} pairs, A B alternating, each "
          f"run a fresh process; {time.strftime('%Y-%m-%d')}", flush=True)
    results = []
    for env in args.envs:
        results.append(compare("pathwise-sac", "sb3-sac", env, args, args.steps,
                               args.learning_starts, with_return=True))
    if not args.no_pg:
        results.append(compare("pathwise-reinforce", "sb3-a2c", PG_ENV, args, args.pg_steps,
                               0, with_return=False))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
