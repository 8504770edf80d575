"""The VAE benchmark: test ELBO of every (latent, estimator) over seeds, with 95 % CIs.

Each row is ``pathwise lab vae`` at its defaults (scikit-learn's 8×8 digits, binarized; 3000
steps of Adam on batches of 100; 4 latent draws per image per step for every estimator), run
in this process one after another, so wall-clock times are those of one training at a time:

    latent       variants
    gaussian     pathwise, score (leave-one-out over the 4 draws); and with 1 draw: pathwise,
                 score with no baseline (the single-sample estimators the papers compare)
    categorical  pathwise (Gumbel-softmax), straight_through_gumbel, straight_through,
                 gumbel_rao, reinmax, score; reinmax at a fixed τ = 1 (its paper's setting);
                 with 1 draw: pathwise, score with no baseline

Writes ``<out>/vae.md`` (the table, the ordering checks, the figure, the command, the date and
the machine with its load), ``<out>/vae.json`` (every run's numbers) and ``<out>/vae.png``
(test-ELBO and encoder-gradient-variance curves). The run directories go under ``--runs``
(default ``runs/bench-vae``), one folder per variant, so ``pathwise compare`` can be pointed
at any of them; runs already finished there are not run again.

    python benchmarks/vae.py --out docs/vae                 # the table in the README
    python benchmarks/vae.py --out /tmp/vae --quick         # a smoke pass: 200 steps, 1 seed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from pathwise.analysis import compare, vae
from pathwise.training.runtime import describe_machine, load_average


@dataclass(frozen=True)
class Variant:
    latent: str
    estimator: str
    label: str
    options: dict = field(default_factory=dict)  # VAEConfig fields beyond the defaults

    @property
    def key(self) -> str:
        extra = "-".join(f"{k}{v}" for k, v in sorted(self.options.items()))
        return "-".join(filter(None, (self.latent, self.estimator, extra)))


ONE_DRAW = {"num_samples": 1}
FIXED_TAU = {"tau": 1.0, "tau_min": 1.0}
VARIANTS = [
    Variant("gaussian", "pathwise", "pathwise (reparameterization)"),
    Variant("gaussian", "score", "score, leave-one-out baseline"),
    Variant("gaussian", "pathwise", "pathwise, 1 draw", ONE_DRAW),
    Variant("gaussian", "score", "score, 1 draw, no baseline", ONE_DRAW),
    Variant("categorical", "pathwise", "Gumbel-softmax"),
    Variant("categorical", "straight_through_gumbel", "straight-through Gumbel"),
    Variant("categorical", "straight_through", "straight-through"),
    Variant("categorical", "gumbel_rao", "Gumbel-Rao (10 conditional draws)"),
    Variant("categorical", "reinmax", "ReinMax"),
    Variant("categorical", "reinmax", "ReinMax, τ = 1 fixed", FIXED_TAU),
    Variant("categorical", "score", "score, leave-one-out baseline"),
    Variant("categorical", "pathwise", "Gumbel-softmax, 1 draw", ONE_DRAW),
    Variant("categorical", "score", "score, 1 draw, no baseline", ONE_DRAW),
]
QUICK = {"steps": 200, "eval_every": 100, "iw_samples": 50, "final_samples": 10}






def run_variant(variant: Variant, seed: int, runs: Path, overrides: dict) -> dict | None:
    """One run; None when it finished earlier (its results.json is then read back)."""
    run_dir = runs / variant.key / f"s{seed}"
    if (run_dir / "results.json").is_file():
        return None
    if run_dir.exists():  # an interrupted run: start it again
        import shutil

        shutil.rmtree(run_dir)
    cfg = vae.VAEConfig(latent=variant.latent, estimator=variant.estimator, seed=seed,
                        **{**variant.options, **overrides})
    cpu = time.process_time()
    _, result = vae.run(cfg, run_dir, wandb_mode="disabled")
    row = {**result.to_dict(), "cpu_seconds": time.process_time() - cpu}
    (run_dir / "results.json").write_text(json.dumps(row, indent=2) + "\n")
    return row


def summarize(scores: list[float]) -> dict:
    values = np.asarray(scores, dtype=float)
    low, high = (compare.stratified_bootstrap_ci([values], compare.mean) if len(values) > 1
                 else (math.nan, math.nan))
    return {"mean": float(values.mean()), "ci": [low, high], "values": values.tolist()}


def fmt(s: dict, digits: int = 2) -> str:
    if math.isnan(s["ci"][0]):
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} [{s['ci'][0]:.{digits}f}, {s['ci'][1]:.{digits}f}]"


def fmt_g(s: dict) -> str:
    if math.isnan(s["ci"][0]):
        return f"{s['mean']:.3g}"
    return f"{s['mean']:.3g} [{s['ci'][0]:.3g}, {s['ci'][1]:.3g}]"


def ordering(rows: dict, better: str, worse: str) -> str:
    """One line: is ``better``'s test ELBO above ``worse``'s, and do the CIs separate?"""
    a, b = rows[better]["test_elbo"], rows[worse]["test_elbo"]
    gap = a["mean"] - b["mean"]
    if math.isnan(a["ci"][0]) or math.isnan(b["ci"][0]):
        verdict = "one seed: no CI"
    elif gap > 0:
        verdict = "holds, 95% CIs apart" if a["ci"][0] > b["ci"][1] else "CIs overlap"
    else:
        verdict = "reversed, 95% CIs apart" if b["ci"][0] > a["ci"][1] else "CIs overlap"
    return (f"{rows[better]['label']} − {rows[worse]['label']}: {gap:+.2f} nats ({verdict})")


def plot(variants: list[Variant], runs: Path, seeds: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latents = list(dict.fromkeys(v.latent for v in variants))
    fig, axes = plt.subplots(2, len(latents), figsize=(6.2 * len(latents), 9.0), dpi=110,
                             squeeze=False)
    for col, latent in enumerate(latents):
        members = [v for v in variants if v.latent == latent]
        for variant in members:
            loaded = [compare.load_run(runs / variant.key / f"s{s}") for s in seeds
                      if (runs / variant.key / f"s{s}" / "results.json").is_file()]
            if not loaded:
                continue
            # Colour: the estimator; line style: the variant (dashed 1 draw, dotted fixed τ).
            colour = vae.ESTIMATORS[latent].index(variant.estimator)
            dash = "--" if variant.options.get("num_samples") == 1 else \
                ":" if "tau_min" in variant.options else "-"
            style = {"color": f"C{colour}", "linestyle": dash}
            for row, metric in enumerate(("eval/test_elbo", f"grad/{variant.estimator}/variance")):
                result = compare.curve(loaded, metric)
                if result is None:
                    continue
                grid, mid, low, high = result
                ax = axes[row, col]
                ax.plot(grid, mid, label=f"{variant.label} (n={len(loaded)})", **style)
                ax.fill_between(grid, low, high, color=style["color"], alpha=0.15, lw=0)
        axes[0, col].set_title(f"{latent} latent: test ELBO (nats per image)")
        axes[1, col].set_title(f"{latent} latent: encoder-gradient variance")
        axes[1, col].set_yscale("log")
        for ax in axes[:, col]:
            ax.set_xlabel("gradient steps")
            ax.grid(alpha=0.3)
        # One legend per column, under it: nine curves leave no empty corner inside.
        axes[1, col].legend(*axes[0, col].get_legend_handles_labels(), fontsize="small",
                            loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/vae", help="where vae.md, vae.json, vae.png go")
    parser.add_argument("--runs", default="runs/bench-vae", help="where the run dirs go")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--only", choices=vae.LATENTS, help="one latent's rows only")
    parser.add_argument("--quick", action="store_true", help="smoke pass: 200 steps, 1 seed")
    opts = parser.parse_args()
    out, runs = Path(opts.out), Path(opts.runs)
    out.mkdir(parents=True, exist_ok=True)
    overrides = dict(QUICK) if opts.quick else {}
    seeds = list(range(1 if opts.quick else opts.seeds))
    variants = [v for v in VARIANTS if opts.only in (None, v.latent)]
    if opts.quick:
        runs = runs / "quick"
    meta = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "date": datetime.now().isoformat(timespec="minutes"), "machine": describe_machine(),
            "load_before": load_average()}
    clock = time.perf_counter()
    rows, ran = {}, 0
    for variant in variants:
        results = []
        for seed in seeds:
            row = run_variant(variant, seed, runs, overrides)
            ran += row is not None
            when = f"load {load_average()}"
            if row is None:
                row = json.loads((runs / variant.key / f"s{seed}" / "results.json").read_text())
                when = "(an earlier run)"
            results.append(row)
            print(f"{variant.key:48s} s{seed}  test ELBO {row['test_elbo']:8.3f}  "
                  f"grad var {row['grad_variance']:9.4g}  {row['seconds']:6.1f}s "
                  f"(cpu {row.get('cpu_seconds', float('nan')):.1f}s)  {when}", flush=True)
        rows[variant.key] = {"label": variant.label, "latent": variant.latent,
                             "estimator": variant.estimator, "options": variant.options,
                             "runs": results, **{
                                 metric: summarize([r[metric] for r in results])
                                 for metric in ("test_elbo", "train_elbo", "test_iw_bound",
                                                "grad_variance", "seconds", "cpu_seconds")
                                 if all(r.get(metric) is not None for r in results)}}
    meta.update(load_after=load_average(), elapsed_seconds=time.perf_counter() - clock)
    previous = out / "vae.json"
    if not ran and previous.is_file():  # nothing new was run: keep when and where it was
        old = json.loads(previous.read_text())
        meta = {k: old.get(k, v) for k, v in meta.items()}
    figure = out / "vae.png"
    plot(variants, runs, seeds, figure)
    defaults = replace(vae.VAEConfig(), **overrides)
    (out / "vae.json").write_text(json.dumps({
        **meta, "seeds": seeds, "config": vars(defaults), "rows": rows}, indent=2) + "\n")
    (out / "vae.md").write_text(report(rows, variants, defaults, seeds, meta,
                                       figure.relative_to(out)), encoding="utf-8")
    print(f"wrote {out / 'vae.md'}, {out / 'vae.json'}, {figure}")
    return 0


def report(rows, variants, cfg, seeds, meta, figure) -> str:
    runs = [r for row in rows.values() for r in row["runs"] if r.get("cpu_seconds")]
    ratio = (sum(r["seconds"] for r in runs) / sum(r["cpu_seconds"] for r in runs)
             if runs else math.nan)
    lines = [
        "# VAEs trained with each estimator", "",
        f"`{meta['command']}` on {meta['date'].replace('T', ' ')}; {meta['machine']}. Load "
        f"average (1, 5, 15 min) {meta['load_before']} at the start, {meta['load_after']} at "
        f"the end, on {os.cpu_count()} cores shared with other work: the wall-clock seconds "
        f"below are {ratio:.1f} times the CPU seconds. {meta['elapsed_seconds'] / 60:.0f} min "
        f"in all, one training at a time.", "",
        f"scikit-learn's 8×8 digits binarized at 8/16 (1437 training, 360 test images); "
        f"encoder and decoder with one hidden layer of {cfg.hidden} ReLU units; Gaussian "
        f"latent of {cfg.latent_dim} dimensions, categorical latent of {cfg.latent_dim} "
        f"variables × {cfg.classes} classes; {cfg.steps} Adam steps (lr {cfg.lr:g}) on "
        f"batches of {cfg.batch_size}; {cfg.num_samples} latent draws per image per step "
        f"unless the row says 1; τ = max({cfg.tau_min:g}, {cfg.tau:g}·exp(−{cfg.tau_rate:g}·t))"
        f" for the relaxations. Seeds {', '.join(map(str, seeds))}. Mean over seeds with a "
        f"95% bootstrap CI (`pathwise.analysis.compare`). ELBOs in nats per image (higher is "
        f"better): the test ELBO by Monte Carlo over {cfg.final_samples} exact latent draws "
        f"per image (standard error about 0.01), the importance-weighted bound with "
        f"K = {cfg.iw_samples}; the encoder-gradient variance is Σ_j Var_j over the "
        f"encoder's parameters of {cfg.grad_samples} independent estimates on a fixed batch "
        f"of {cfg.grad_batch} training images, at the end of training.", "",
        "| latent | estimator | test ELBO | train ELBO | IW bound (test) | "
        "encoder-gradient variance | seconds | CPU seconds |",
        "|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        r = rows[variant.key]
        cpu = fmt(r["cpu_seconds"], 0) if "cpu_seconds" in r else "-"
        lines.append(f"| {variant.latent} | {r['label']} | {fmt(r['test_elbo'])} | "
                     f"{fmt(r['train_elbo'])} | {fmt(r['test_iw_bound'])} | "
                     f"{fmt_g(r['grad_variance'])} | {fmt(r['seconds'], 0)} | {cpu} |")
    checks = [("gaussian-pathwise", "gaussian-score"),
              ("gaussian-pathwise-num_samples1", "gaussian-score-num_samples1")]
    checks += [(f"categorical-{name}", "categorical-score")
               for name in ("pathwise", "straight_through_gumbel", "straight_through",
                            "gumbel_rao", "reinmax")]
    checks += [("categorical-reinmax-tau1.0-tau_min1.0", "categorical-score"),
               ("categorical-pathwise-num_samples1", "categorical-score-num_samples1"),
               ("categorical-gumbel_rao", "categorical-straight_through_gumbel"),
               ("categorical-reinmax", "categorical-straight_through"),
               ("categorical-reinmax-tau1.0-tau_min1.0", "categorical-straight_through_gumbel")]
    present = [(a, b) for a, b in checks if a in rows and b in rows]
    if present:
        lines += ["", "## The orderings the papers lead one to expect (test ELBO)", ""]
        lines += [f"- {ordering(rows, a, b)}" for a, b in present]
    lines += ["", f"![test ELBO and encoder-gradient variance against steps]({figure})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
