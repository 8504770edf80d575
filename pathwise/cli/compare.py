"""``pathwise compare``: aggregate runs over seeds; table, curves and a report."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from pathwise.cli.common import PROG, Parser, console


def compare_parser() -> argparse.ArgumentParser:
    from pathwise.analysis.compare import DEFAULT_METRIC

    p = Parser(prog=f"{PROG} compare", description=(
        "Group runs by setting (runs whose configs differ in anything but the seed are never "
        "pooled; a group that differs from another of the same estimator is labelled by "
        "what differs), aggregate seeds (mean and interquartile mean "
        "with 95% stratified-bootstrap CIs, as rliable), print the table, and write learning "
        "curves (vs env steps and vs wall-clock) and a markdown report."))
    p.add_argument("paths", nargs="+", metavar="RUN_DIR",
                   help="run directories, or directories holding them (a sweep, runs/)")
    p.add_argument("--metric", default=DEFAULT_METRIC, metavar="KEY",
                   help=f"metrics.jsonl key to compare (default {DEFAULT_METRIC}); shell "
                        f"wildcards compare several, e.g. 'grad/*/variance' (every "
                        f"estimator's gradient variance, with diagnostics on)")
    p.add_argument("--out", metavar="DIR",
                   help="where figures and report.md go (default runs/compare/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the table as JSON alone")
    p.add_argument("--wandb", action="store_true",
                   help="also log the table and figures to a job_type=compare wandb run")
    return p


def main(args: list[str]) -> int:
    opts = compare_parser().parse_args(args)
    from pathwise.analysis import compare

    runs = [compare.load_run(p) for p in compare.find_runs(opts.paths)]
    rows = compare.summarize(runs, opts.metric)
    out = Path(opts.out or Path("runs") / "compare" / datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    figures = compare.plot_curves(runs, opts.metric, out)
    report = out / "report.md"
    report.write_text(compare.markdown_report(rows, runs, figures, out), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n",
                                      encoding="utf-8")
    wandb_dir = compare.log_to_wandb(runs, rows, figures, out) if opts.wandb else None
    if opts.json:
        print(json.dumps([r.to_dict() for r in rows]))
        return 0
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE, title=f"{opts.metric}: {len(runs)} runs", title_justify="left")
    for name in compare.table_header(rows):
        table.add_column(name, justify="right" if name in ("runs", "steps") else "left")
    for cells in compare.table_rows(rows):
        table.add_row(*(escape(c) for c in cells))  # "[total_steps=2000]" is not markup
    term = console()
    term.print(table)
    for row in rows:
        if row.duplicate_seeds:
            term.print(f"note: {row.env} {row.label} has seed "
                       f"{', '.join(map(str, row.duplicate_seeds))} more than once; each run "
                       f"counts as a sample", highlight=False, markup=False)
    term.print(f"wrote {report} and {len(figures)} figures to {out}")
    if wandb_dir is not None:
        term.print(f"wandb: {wandb_dir}")
    return 0
