"""Torch threads when runs share a machine: one run alone, and two started together.

    python benchmarks/threads.py                      # HalfCheetah-v5, 2,000 steps per run
    python benchmarks/threads.py --env Pendulum-v1 --steps 3000

Each case starts `pathwise train` processes (SAC with the env's preset, ``learning_starts``
1,000, no evaluation but one final episode, wandb disabled) and times them whole, from start
to the last one's exit. The cases:

- one run, ``torch_threads=1`` and ``torch_threads=0`` (the default: the cores idle at start);
- two runs at once with 1 thread each, with the default, and with 2 threads each under
  torch's own OpenMP wait policy (torch imported before pathwise, so ``OMP_WAIT_POLICY`` stays
  unset): idle threads spin and the two runs take each other's cores. That case runs under a
  ``--timeout`` and reads "> timeout" when it hits it.

The question it answers: is ``torch_threads=0`` as good as 1 when several runs share the cores
(a shell loop, two terminals), and as good as all cores for a run alone?
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `pathwise train` with torch loaded first: libgomp keeps its default (spinning) wait policy.
TORCH_FIRST = "import sys, torch; from pathwise.cli import main; sys.exit(main())"


def start(run_dir: Path, args, threads: int, torch_first: bool, seed: int) -> subprocess.Popen:
    prefix = [sys.executable, "-c", TORCH_FIRST] if torch_first else [sys.executable, "-m",
                                                                       "pathwise"]
    cmd = prefix + ["train", "--no-progress", f"env={args.env}", f"total_steps={args.steps}",
                    "agent.learning_starts=1000", f"torch_threads={threads}",
                    "wandb.mode=disabled", "eval_every=0", "eval_episodes=1", f"seed={seed}",
                    f"run_dir={run_dir}"]
    # This process imported pathwise (OMP_WAIT_POLICY=PASSIVE): torch's own policy needs it gone.
    from pathwise.training.runtime import environ_for_other_libraries

    environ = environ_for_other_libraries() if torch_first else None
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=environ)


def case(root: Path, args, runs: int, threads: int, torch_first: bool = False) -> dict:
    started = time.perf_counter()
    procs = [start(root / f"run{i}", args, threads, torch_first, seed=i) for i in range(runs)]
    chosen, timed_out = [], False
    for proc in procs:
        left = max(1.0, args.timeout - (time.perf_counter() - started))
        try:
            _, err = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            timed_out = True
            continue
        if proc.returncode != 0:
            raise SystemExit(f"a run failed:\n{err[-2000:]}")
        found = re.search(r"(\d+) torch threads?", err)
        chosen.append(found.group(1) if found else "?")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "timed_out": timed_out, "threads": chosen}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a case is stopped and reported as '> timeout'")
    args = parser.parse_args(argv)
    if args.steps <= 1000:
        parser.error("--steps must exceed the 1,000 random steps")

    from pathwise.training.runtime import describe_machine, load_average

    print(f"# {describe_machine()}; load average {load_average()}; {args.env}, "
          f"{args.steps:,} steps per run (1,000 random); {time.strftime('%Y-%m-%d')}",
          flush=True)
    cases = [("one run", 1, 1, False), ("one run", 1, 0, False),
             ("two at once", 2, 1, False), ("two at once", 2, 0, False),
             ("two at once, torch's wait policy", 2, 2, True)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, runs, threads, torch_first) in enumerate(cases):
            result = case(Path(tmp) / str(i), args, runs, threads, torch_first)
            seconds = (f"> {args.timeout:.0f}" if result["timed_out"]
                       else f"{result['seconds']:.1f}")
            label = "0 (default)" if threads == 0 else str(threads)
            rows.append(f"| {name} | {label} | {', '.join(result['threads']) or '-'} | "
                        f"{seconds} |")
            print(f"  {rows[-1]}", flush=True)
    print("\n| runs | torch_threads | threads each run took | seconds, start to last exit |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
