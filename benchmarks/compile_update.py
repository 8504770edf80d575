"""One SAC update, eager against ``torch.compile``: milliseconds per update, in one process.

Two agents with the same networks and the same batch, one of them compiled
(``SAC.compile``), timed in alternating blocks (eager, compiled, eager, …) so that a change in
the machine's load hits both alike. HalfCheetah-v5's sizes by default (17-dim observations,
6-dim actions) with SAC's 256×256 networks and batch 256.

    python benchmarks/compile_update.py
    python benchmarks/compile_update.py --device cuda --mode max-autotune-no-cudagraphs
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pathwise.agents.buffers import Batch
from pathwise.agents.sac import SAC, SACConfig
from pathwise.policies.estimators import get_estimator


def make_agent(args) -> SAC:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=[256, 256], batch_size=args.batch_size, buffer_size=1000,
                    learning_starts=0)
    return SAC(args.obs_dim, args.action_dim, False, cfg, get_estimator("pathwise"),
               device=args.device)


def timed(agent: SAC, batch: Batch, updates: int, device: torch.device) -> float:
    """Milliseconds per update over ``updates`` updates (synchronised on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / updates * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default="default", help="torch.compile mode (compile_mode)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per side")
    parser.add_argument("--updates", type=int, default=50, help="updates per block")
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(1)
    n, d, a = args.batch_size, args.obs_dim, args.action_dim
    batch = Batch(*(x.to(device) for x in (
        torch.randn(n, d, generator=g), torch.rand(n, a, generator=g) * 2 - 1,
        torch.randn(n, generator=g), torch.randn(n, d, generator=g), torch.zeros(n))))
    eager, compiled = make_agent(args), make_agent(args)
    compiled.compile(args.mode)
    start = time.perf_counter()
    timed(compiled, batch, 3, device)  # compiles forward and backward graphs
    warmup = time.perf_counter() - start
    timed(eager, batch, 20, device)
    times = {"eager": [], "compiled": []}
    for _ in range(args.blocks):
        times["eager"].append(timed(eager, batch, args.updates, device))
        times["compiled"].append(timed(compiled, batch, args.updates, device))
    print(f"# device={device}, torch threads={args.threads}, compile mode={args.mode}, "
          f"obs {d}, actions {a}, batch {n}; first compiled updates took {warmup:.1f} s")
    print("| | ms/update, median of blocks | blocks |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    ratios = [e / c for e, c in zip(times["eager"], times["compiled"], strict=True)]
    print(f"| speed-up of compiled (eager / compiled) | {statistics.median(ratios):.2f} | "
          f"{', '.join(f'{r:.2f}' for r in ratios)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
