"""``pathwise lab``: textbook estimator results, reproduced and checked; ``pathwise lab
horizon``: gradient variance through the dynamics against the horizon (PIPPS)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from pathwise.cli.common import PROG, Parser, at_least_two, console
from pathwise.errors import UsageError


def lab_parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} lab", description=(
        "Textbook results reproduced by the library's own estimators and checked against "
        "closed forms (Mohamed et al. 2020, §3): per-sample variance of pathwise and score "
        "function estimators on a Gaussian for three costs as k varies, variance against "
        "dimension, and Gumbel-softmax / straight-through bias and variance against the "
        "temperature on a categorical cost. Writes PNG figures and lab.md."))
    p.add_argument("--out", metavar="DIR",
                   help="where figures, lab.md and lab.json go (default runs/lab/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the results as JSON alone")
    p.add_argument("--samples", type=at_least_two, default=None, metavar="N",
                   help="Monte Carlo draws per point (default 20000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.epilog = f"sub-command: {PROG} lab horizon --help (gradient variance against the horizon)"
    return p


def main(args: list[str]) -> int:
    if args[:1] == ["horizon"]:
        return horizon_main(args[1:])
    opts = lab_parser().parse_args(args)
    from pathwise.analysis import lab

    out = Path(opts.out or Path("runs") / "lab" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to {out}: {err.strerror or err}") from None
    results = lab.run(out, samples=opts.samples or lab.SAMPLES, seed=opts.seed)
    if opts.json:
        print(json.dumps(results))
        return 0
    out = console()
    checks = results["checks"]
    out.print(f"[bold]pathwise lab[/bold]: {checks['passed']} of {checks['total']} "
                  f"empirical variances within {checks['z']:g} SE of the closed form "
                  f"(largest |z| {checks['max_abs_z']:.2f}); {results['seconds']:.1f}s",
                  highlight=False)
    for path in results["figures"]:
        out.print(f"  {path}", highlight=False)
    out.print(f"  {results['report']}", highlight=False)
    return 0 if checks["passed"] == checks["total"] else 1


def _out_dir(path: str | None, name: str) -> Path:
    out = Path(path or Path("runs") / name / datetime.now().strftime("%Y%m%d-%H%M%S"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write to {out}: {err.strerror or err}") from None
    return out


def _horizons(text: str) -> list[int]:
    try:
        values = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be integers >= 1, got {text!r}")
    return values


def horizon_parser() -> argparse.ArgumentParser:
    from pathwise.analysis.horizon import BATCH, HORIZONS, SAMPLES, TASKS

    p = Parser(prog=f"{PROG} lab horizon", description=(
        "Variance and signal-to-noise of the gradient of the H-step return of a fixed policy, "
        "through the dynamics (pathwise, as APG backpropagates) and by the score function "
        "(as REINFORCE), for H = 1 ... 200 on a smooth task and a chaotic one: "
        f"{', '.join(f'{t} ({k})' for t, k in TASKS.items())}. Reproduces Parmas et al. 2018 "
        "(PIPPS): through chaos the pathwise variance explodes with H. Writes horizon.png, "
        "horizon.md and horizon.json."))
    p.add_argument("--out", metavar="DIR",
                   help="where the figure, horizon.md and horizon.json go (default "
                        "runs/lab-horizon/<timestamp>)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON alone (rows of env, horizon, estimator, "
                        "variance, snr and the floor-corrected statistics)")
    p.add_argument("--horizons", type=_horizons, default=list(HORIZONS), metavar="H,H,...",
                   help=f"horizons (default {','.join(map(str, HORIZONS))})")
    p.add_argument("--samples", type=at_least_two, default=SAMPLES, metavar="K",
                   help=f"independent gradient estimates per point (default {SAMPLES})")
    p.add_argument("--batch", type=at_least_two, default=BATCH, metavar="M",
                   help=f"trajectories averaged by each estimate (default {BATCH})")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    return p


def horizon_main(args: list[str]) -> int:
    opts = horizon_parser().parse_args(args)
    import torch

    from pathwise.analysis import horizon

    out_dir = _out_dir(opts.out, "lab-horizon")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread, as training runs use
    try:
        results = horizon.run(out_dir, opts.horizons, opts.samples, opts.batch, opts.seed)
    finally:
        torch.set_num_threads(threads)
    if opts.json:
        print(json.dumps(results))
        return 0
    out = console()
    out.print(f"[bold]pathwise lab horizon[/bold]: variance of a gradient estimate, longest "
              f"horizon over shortest; {results['seconds']:.1f}s", highlight=False)
    for g in results["growth"]:
        out.print(f"  {g['env']:<28} {g['estimator']:<9} ×{g['ratio']:.3g} (H {g['from']} → "
                  f"{g['to']}), ×{g['tail_ratio']:.3g} over the last quarter (H "
                  f"{g['tail_from']} → {g['to']})", highlight=False)
    goal = results["goal"]
    if goal["ratio"] is not None:
        verdict = "reproduced" if goal["met"] else "not reproduced"
        out.print(f"  chaotic task, pathwise: ×{goal['ratio']:.3g} (≥ {goal['target']:g}×: "
                  f"PIPPS {verdict})", highlight=False)
    for path in results["figures"]:
        out.print(f"  {path}", highlight=False)
    out.print(f"  {results['report']}", highlight=False)
    return 0
