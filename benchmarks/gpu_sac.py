"""SAC on a torch env on the GPU: env steps/s and updates/s of the whole loop, eager against
``compile=true`` and ``cudagraphs=true``.

Each mode is a fresh subprocess training ``pathwise/Pendulum-v1`` with many envs on the
device; the figure is the loop's own ``charts/sps`` over its last log interval (compilation
and warm-up excluded), updates/s = env steps/s × ``agent.updates_per_step``.

    python benchmarks/gpu_sac.py                       # 4,096 envs, 3 modes
    python benchmarks/gpu_sac.py --num-envs 16384 --modes eager cudagraphs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"eager": {}, "compile": {"compile": True},
         "cudagraphs": {"compile": True, "cudagraphs": True}}


def worker(args) -> None:
    from pathwise import train
    from pathwise.training.tracking import read_metrics

    updates_per_step = args.updates_per_vector_step / args.num_envs
    config = {"env": "pathwise/Pendulum-v1", "device": args.device, "num_envs": args.num_envs,
              "total_steps": args.vector_steps * args.num_envs, "eval_every": 0,
              "eval_episodes": 1, "checkpoint_every": 0,
              "log_every": args.num_envs * (args.vector_steps // 4),
              "wandb": {"mode": "disabled"}, **MODES[args.mode],
              "agent": {"name": "sac", "hidden_sizes": [256, 256],
                        "batch_size": args.batch_size, "buffer_size": 1_000_000,
                        "learning_starts": 2 * args.num_envs,
                        "updates_per_step": updates_per_step}}
    with tempfile.TemporaryDirectory() as tmp:
        config["run_dir"] = str(Path(tmp) / "run")
        started = time.perf_counter()
        train(config)
        seconds = time.perf_counter() - started
        sps = [r["charts/sps"] for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl")
               if "charts/sps" in r]
    print("RESULT " + json.dumps({"sps": sps[-1], "updates_per_s": sps[-1] * updates_per_step,
                                  "seconds": seconds}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--updates-per-vector-step", type=int, default=4)
    parser.add_argument("--vector-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--worker", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.mode = args.worker
        worker(args)
        return
    import torch

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"# {name}, torch {torch.__version__}; pathwise/Pendulum-v1, {args.num_envs:,} envs, "
          f"{args.updates_per_vector_step} updates per vector step, batch {args.batch_size}, "
          f"256x256 networks; {time.strftime('%Y-%m-%d')}")
    print("| mode | env steps/s | SAC updates/s | whole run (s, compilation included) |")
    print("|---|---:|---:|---:|")
    for mode in args.modes:
        cmd = [sys.executable, __file__, "--worker", mode, "--device", args.device,
               "--num-envs", str(args.num_envs), "--vector-steps", str(args.vector_steps),
               "--updates-per-vector-step", str(args.updates_per_vector_step),
               "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"| {mode} | failed: {proc.stderr.strip().splitlines()[-1:]} | | |")
            continue
        r = json.loads(lines[-1][7:])
        print(f"| {mode} | {r['sps']:,.0f} | {r['updates_per_s']:,.0f} | {r['seconds']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
