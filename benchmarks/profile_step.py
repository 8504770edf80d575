"""Where an env step's time goes: pathwise's SAC and Stable-Baselines3's, side by side.

Runs one ``benchmarks/throughput.py`` worker of each library (same env, hyperparameters,
thread count) under the sampling profiler py-spy (``pip install py-spy``), sorts every sample
of the training loop into a category by the frames on its stack, and prints milliseconds per
env step and the share of the loop for each:

    python benchmarks/profile_step.py                         # HalfCheetah-v5, 2,000 steps
    python benchmarks/profile_step.py --env Pendulum-v1 --steps 3000

Milliseconds are wall-clock time spread over every step of the loop, the random steps before
``learning_starts`` included (keep it small next to ``--steps``). Imports, construction and the
final evaluation are outside the loop and left out. Categories, most specific first: a sample
inside ``backward`` counts as backward even though an update's frame is above it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The frame that runs each library's training loop: only samples under it count.
LOOPS = {"pathwise-sac": "Run.train (pathwise/training/loop.py",
         "sb3-sac": "OffPolicyAlgorithm.learn ("}

# (category, regex on one frame "qualname (path:line)"), tried in order on every sample.
CATEGORIES = [
    ("update: backward", r"^(Tensor\.)?backward \(torch/|_engine_run_backward"),
    ("update: optimizer step, zero_grad", r"^(Optimizer|Adam)\.|^_?(fused_)?adam \(torch/"),
    ("update: target (Polyak) update", r"_foreach_lerp_|^polyak_update "),
    ("update: replay sample", r"^ReplayBuffer\.sample "),
    ("logging", r"^Logger\.|^Run\.log|^Run\.check_finite|^JsonlWriter\.|_dump_logs"),
    ("update: forward (losses) and the rest", r"^SAC\.(update|train) "),
    ("act", r"^SAC\.act |_sample_action"),
    ("env step", r"^TorchVecEnv\.step |VecEnv\.step|step_wait"),
    ("store transition", r"^SAC\.observe |_store_transition"),
    (None, r"evaluate_and_keep_best|save_checkpoint|save_policy|^Run\.finish"),  # left out
]
OTHER = "loop bookkeeping, callbacks"


def polyak_frame() -> str:
    """pathwise's Polyak update is one C call, no Python frame of its own: its samples sit on
    the line of ``SAC.update`` that makes it."""
    source = (HERE.parent / "agents" / "sac.py").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "_foreach_lerp_(" in text)
    return rf"^SAC\.update \(agents/sac\.py:{line}\)"


def profile(kind: str, args, out: Path) -> Counter:
    """Seconds per category for one run of ``kind`` under py-spy."""
    raw = out / f"{kind}.txt"
    cmd = ["py-spy", "record", "--rate", str(args.rate), "--format", "raw", "--output",
           str(raw), "--", sys.executable, str(HERE / "throughput.py"), "--worker", kind,
           "--env", args.env, "--steps", str(args.steps), "--learning-starts",
           str(args.learning_starts), "--threads", str(args.threads), "--device", args.device,
           "--seed", "0", "--batch-size", "256", "--buffer-size", "1000000",
           "--eval-episodes", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not raw.exists():
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"profiling {kind} failed (exit {proc.returncode})")
    return categorize(raw, kind, args.rate)


def categorize(raw: Path, kind: str, rate: int) -> Counter:
    """Seconds per category in py-spy's raw output (one "frame;frame;… count" per line)."""
    seconds: Counter = Counter()
    rules = [(name, re.compile(rx + (f"|{polyak_frame()}" if "Polyak" in str(name) else "")))
             for name, rx in CATEGORIES]
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        start = next((i for i, f in enumerate(frames) if f.startswith(LOOPS[kind])), None)
        if start is None:
            continue
        inner = frames[start + 1:]
        category = next((name for name, rx in rules if any(rx.search(f) for f in inner)),
                        OTHER)
        if category is not None:
            seconds[category] += int(count) / rate
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--learning-starts", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        raise SystemExit("needs py-spy: pip install py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        results = {kind: profile(kind, args, Path(tmp)) for kind in LOOPS}
    names = [name for name, _ in CATEGORIES if name is not None] + [OTHER]
    print(f"# {args.env}, {args.steps:,} env steps ({args.learning_starts:,} random), "
          f"torch threads={args.threads}, device={args.device}: ms per env step (share)")
    print("| category | " + " | ".join(LOOPS) + " |")
    print("|---|" + "---|" * len(LOOPS))
    for name in names + ["total"]:
        cells = []
        for kind in LOOPS:
            total = sum(results[kind].values())
            sec = total if name == "total" else results[kind][name]
            cells.append(f"{1000 * sec / args.steps:.2f} ({100 * sec / total:.0f}%)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
