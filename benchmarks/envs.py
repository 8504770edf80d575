"""Env throughput: pathwise's batched torch envs against Gymnasium's vector envs.

For every torch task, env steps per second (steps of the batch × num_envs) at num_envs = 1,
16, 256, 4,096 and 65,536 (up to `--max-envs`), on `--device`; for the four that port a
Gymnasium env, the same task in Gymnasium's `SyncVectorEnv` and `AsyncVectorEnv` of 16 envs
(and its numpy-batched `vector_entry_point` where Gymnasium has one: CartPole). All envs
autoreset in SAME_STEP mode; actions are drawn from the action space before timing, so the
figure is the env's own cost. The issue's goal: pathwise/Pendulum-v1 at 4,096 envs on the CPU
at ≥ 50× Gymnasium's Pendulum-v1 in a SyncVectorEnv of 16.

    python benchmarks/envs.py                       # every task, up to 65,536 envs
    python benchmarks/envs.py --quick               # a smoke pass: short timings, ≤ 4,096 envs
    python benchmarks/envs.py --device cuda --max-envs 1048576
    python benchmarks/envs.py --envs Pendulum-v1 CartPole-v1 --seconds 2

Each figure times whole chunks of steps for at least `--seconds` (after a warm-up), with the
device synchronised at both ends. torch runs on `--threads` threads (default 1: one core, like
the SyncVectorEnv it is compared with; AsyncVectorEnv uses 16 processes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode

import pathwise.envs  # noqa: F401  (registers the pathwise/ ids)
from pathwise.envs import TORCH_ENVS
from pathwise.training.runtime import describe_machine, load_average

SIZES = (1, 16, 256, 4_096, 65_536)
BASELINE_ENVS = 16
GOAL = ("Pendulum-v1", 4_096, 50.0)  # task, num_envs, × Gymnasium's SyncVectorEnv(16)


def machine(device: torch.device) -> str:
    return (f"{describe_machine(device)} ({torch.get_num_threads()} threads), gymnasium "
            f"{gym.__version__}; device {device}; load average {load_average()}")


def steps_per_second(step: Callable[[int], None], sync: Callable[[], None],
                     seconds: float, warmup: int = 3) -> float:
    """Calls of `step(i)` per second, timed over whole chunks of calls lasting ≥ `seconds`."""
    for i in range(warmup):
        step(i)
    sync()
    done, chunk, start = 0, 1, time.perf_counter()
    while True:
        for i in range(chunk):
            step(done + i)
        done += chunk
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed
        # Aim the next chunk at the time left (syncing once per chunk, not once per step).
        chunk = max(1, min(4 * chunk, int(done * (seconds - elapsed) / elapsed) + 1))


def time_torch(env_id: str, num_envs: int, device: torch.device, seconds: float) -> float:
    env = gym.make_vec(env_id, num_envs=num_envs, device=device)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [torch.as_tensor(env.action_space.sample(), device=device) for _ in range(4)]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rate = steps_per_second(lambda i: env.step(actions[i % 4]), sync, seconds)
    env.close()
    return rate * num_envs


def time_gymnasium(gym_id: str, mode: str, num_envs: int, seconds: float) -> float:
    kwargs = {} if mode == "vector_entry_point" else {
        "vector_kwargs": {"autoreset_mode": AutoresetMode.SAME_STEP}}
    env = gym.make_vec(gym_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(4)]
    rate = steps_per_second(lambda i: env.step(actions[i % 4]), lambda: None, seconds)
    env.close()
    return rate * num_envs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=None,
                        help="tasks, without the pathwise/ prefix (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-envs", type=int, default=None,
                        help="largest num_envs (default 65,536; 4,096 with --quick)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="timing per figure (default 1.0; 0.3 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-async", action="store_true",
                        help="skip Gymnasium's AsyncVectorEnv (16 processes)")
    parser.add_argument("--quick", action="store_true", help="a smoke pass")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 1.0)
    max_envs = args.max_envs or (4_096 if args.quick else 65_536)
    sizes = [n for n in SIZES if n <= max_envs] + ([max_envs] if max_envs not in SIZES else [])
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    tasks = args.envs or [env_id.removeprefix("pathwise/") for env_id in TORCH_ENVS]
    unknown = [t for t in tasks if f"pathwise/{t}" not in TORCH_ENVS]
    if unknown:
        parser.error(f"unknown tasks {unknown}; choose from "
                     f"{[i.removeprefix('pathwise/') for i in TORCH_ENVS]}")

    rows, goal_ratio = [], None
    for task in tasks:
        env_id = f"pathwise/{task}"
        twin = getattr(TORCH_ENVS[env_id], "gymnasium_id", None)
        baseline = None
        if twin:
            modes = ["sync"] + ([] if args.no_async else ["async"])
            if gym.spec(twin).vector_entry_point is not None:
                modes.append("vector_entry_point")
            for mode in modes:
                sizes_here = [BASELINE_ENVS] if mode != "vector_entry_point" else [
                    BASELINE_ENVS, 4_096]
                for n in sizes_here:
                    rate = time_gymnasium(twin, mode, n, seconds)
                    if mode == "sync":
                        baseline = rate
                    rows.append((task, f"Gymnasium {twin} ({mode})", "cpu", n, rate, baseline))
        for n in sizes:
            rate = time_torch(env_id, n, device, seconds)
            rows.append((task, f"pathwise ({device.type})", device.type, n, rate, baseline))
            if (task, n) == GOAL[:2] and device.type == "cpu" and baseline:
                goal_ratio = rate / baseline
        print(f"  {task}: done", flush=True)

    print()
    print(f"# {machine(device)}")
    print(f"# {seconds:g} s per figure; baseline: Gymnasium's SyncVectorEnv of "
          f"{BASELINE_ENVS} (SAME_STEP autoreset)")
    print()
    print("| task | implementation | num_envs | env steps/s | × Gymnasium sync (16) |")
    print("|---|---|---:|---:|---:|")
    for task, impl, _, n, rate, baseline in rows:
        ratio = f"{rate / baseline:.1f}×" if baseline else "–"
        print(f"| {task} | {impl} | {n:,} | {rate:,.0f} | {ratio} |")
    if goal_ratio is not None:
        verdict = "met" if goal_ratio >= GOAL[2] else "NOT met"
        print(f"\nGoal ({GOAL[0]} at {GOAL[1]:,} envs on the CPU ≥ {GOAL[2]:.0f}× Gymnasium's "
              f"SyncVectorEnv of {BASELINE_ENVS}): {goal_ratio:.0f}×, {verdict}.")


if __name__ == "__main__":
    main()
