"""``pathwise diagnose``: every estimator's gradient statistics at a saved checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pathwise.cli.common import PROG, Parser, at_least_two, console, positive_int
from pathwise.errors import UsageError


def diagnose_parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} diagnose", description=(
        "Rebuild a saved agent (checkpoints/last.pt) and measure the actor gradient of every "
        "estimator that applies, K times on the same states: total variance, mean "
        "per-parameter SNR, |mean|^2/variance, cosine to the reference gradient (exact for "
        "Discrete, a many-sample pathwise one for Box) and bias against the exact gradient. "
        "States come from the replay buffer (SAC) or fresh episodes (REINFORCE). Defaults: "
        "the run's diagnostics config and seed, so at a step where training measured, the "
        "numbers are the ones it logged as grad/*."))
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="a run directory (its checkpoints/last.pt) or a checkpoint file")
    p.add_argument("--samples", type=at_least_two, metavar="K",
                   help="independent gradient estimates per estimator (run's default: 16)")
    p.add_argument("--batch", type=positive_int, metavar="N",
                   help="SAC: states the objective averages over (run's default: 64)")
    p.add_argument("--num-samples", type=positive_int, metavar="M",
                   help="action draws per state of each sampling estimator (default 4)")
    p.add_argument("--episodes", type=at_least_two, metavar="E",
                   help="REINFORCE: fresh episodes, one estimate each (default 16)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the measurement "
                                                         "(default: the run's seed)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--json", action="store_true", help="print the report as JSON alone")
    return p


def main(args: list[str]) -> int:
    opts = diagnose_parser().parse_args(args)
    path = Path(opts.target)
    if not path.exists():
        raise UsageError(f"{path}: no such run directory or checkpoint")
    from pathwise.analysis.diagnostics import diagnose
    from pathwise.training.runtime import resolve_device

    device = resolve_device(opts.device, option="--device ")
    report, context = diagnose(path, device=device, seed=opts.seed,
                               samples=opts.samples, batch_size=opts.batch,
                               num_samples=opts.num_samples, episodes=opts.episodes)
    if opts.json:
        print(json.dumps({**context, **report.to_dict()}))
        return 0
    _print_diagnosis(report, context)
    return 0


def _print_diagnosis(report, context: dict) -> None:
    from rich import box
    from rich.table import Table

    def num(value, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    out = console()
    out.print(f"[bold]{context['checkpoint']}[/bold]: {context['agent']}-"
                  f"{context['estimator']} on {context['env']}, step {report.global_step:,}",
                  highlight=False)
    what = (f"{report.states} states, {report.num_samples} draws per state"
            if report.agent == "sac" else f"{report.states} steps of fresh episodes, "
                                          f"one estimate per episode")
    extra = "".join(f", {k} {v:.4g}" for k, v in (("α", report.alpha),
                                                    ("τ", report.temperature)) if v is not None)
    out.print(f"{what}; {report.parameters:,} actor parameters; reference: "
                  f"{report.reference}{extra}", highlight=False)
    # Each statistic that a pure-noise gradient would not show as zero stands beside its
    # floor (analysis/diagnostics.py): ‖ḡ‖² and the bias corrected by ΣVar/K, the SNRs
    # beside what K zero-mean draws give.
    table = Table(box=box.SIMPLE)
    for name in ("estimator", "K", "variance ± SE", "‖ḡ‖² − var/K (floor)", "SNR (floor)",
                 "median SNR (floor)", "cosine", "bias (noise SE)", "bias above floor"):
        table.add_column(name, justify="left" if name == "estimator" else "right")

    def beside(value, floor) -> str:
        return num(value) if floor is None or value is None else f"{num(value)} ({num(floor, 2)})"

    for s in report.estimators:
        label = s.estimator + (" (trains)" if s.estimator == report.trained_with else "")
        noisy = s.variance > 0  # an exact estimator has no floors
        table.add_row(label, str(s.samples), f"{num(s.variance)} ± {num(s.variance_se, 2)}",
                      beside(s.signal, s.signal_floor if noisy else None),
                      beside(s.snr, s.snr_floor if noisy else None),
                      beside(s.snr_median, s.snr_median_floor if noisy else None),
                      num(s.cosine, 6),
                      "-" if s.bias is None else f"{num(s.bias)} ({num(s.bias_se, 2)})",
                      num(s.bias_corrected))
    out.print(table)
    out.print(f"variance: Σ_j Var_j over the K estimates; ‖ḡ‖² − var/K: unbiased for ‖E g‖²; "
              f"SNR: mean_j (median_j) |ḡ_j|/std_j, floor: the same of a zero gradient; bias: "
              f"|ḡ − exact|, its noise SE sqrt(var/K), above floor sqrt(max(0, bias² − var/K)). "
              f"{report.seconds:.2f}s.", highlight=False)
