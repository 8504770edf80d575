"""``pathwise lab``: textbook estimator results, reproduced and checked.

``pathwise lab vae``: a variational autoencoder trained with one estimator (``vae_main``).
``pathwise lab horizon``: gradient variance through the dynamics against the horizon, PIPPS
(``horizon_main``).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from pathwise.cli.common import PROG, Parser, at_least_two, console, positive_int
from pathwise.errors import UsageError


def lab_parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} lab", description=(
        "Textbook results reproduced by the library's own estimators and checked against "
        "closed forms (Mohamed et al. 2020, §3): per-sample variance of pathwise and score "
        "function estimators on a Gaussian for three costs as k varies, variance against "
        "dimension, and Gumbel-softmax / straight-through bias and variance against the "
        "temperature on a categorical cost. Writes PNG figures and lab.md. "
        f"`{PROG} lab vae --help`: a VAE trained with one estimator. `{PROG} lab horizon "
        f"--help`: gradient variance through the dynamics against the horizon."))
    p.add_argument("--out", metavar="DIR",
                   help="where figures, lab.md and lab.json go (default runs/lab/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the results as JSON alone")
    p.add_argument("--samples", type=at_least_two, default=None, metavar="N",
                   help="Monte Carlo draws per point (default 20000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    return p


def main(args: list[str]) -> int:
    if args[:1] == ["vae"]:
        return vae_main(args[1:])
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


# -- pathwise lab vae --------------------------------------------------------------------------
def vae_parser() -> argparse.ArgumentParser:
    from pathwise.analysis.vae import ESTIMATORS, LATENTS, VAEConfig

    d = VAEConfig()
    p = Parser(prog=f"{PROG} lab vae", description=(
        "Train a variational autoencoder on binarized images with one of the library's "
        "gradient estimators for its latent (Kingma & Welling 2014; Jang et al. 2017). Each "
        "run has a run directory (config.yaml, metrics.jsonl, results.json, wandb/) that "
        f"`{PROG} compare --metric eval/test_elbo` aggregates over seeds and estimators."))
    p.add_argument("--latent", choices=LATENTS, default=d.latent,
                   help="gaussian: N(0, I) prior; categorical: LATENT_DIM variables of "
                        "CLASSES classes, uniform prior (default %(default)s)")
    p.add_argument("--estimator", default=d.estimator, metavar="NAME",
                   help="gaussian: " + ", ".join(ESTIMATORS["gaussian"]) + "; categorical: "
                        + ", ".join(ESTIMATORS["categorical"]) + " (default %(default)s)")
    p.add_argument("--steps", type=positive_int, default=d.steps, metavar="N",
                   help="gradient steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S", help="seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="the run directory (default "
                   "runs/vae-<latent>/<estimator>/s<seed>-<timestamp>); never overwritten")
    p.add_argument("--json", action="store_true", help="print the results as JSON alone")
    p.add_argument("--data", choices=("digits", "mnist"), default=d.data,
                   help="digits: scikit-learn's 8x8 digits (no download); mnist: through "
                        "torchvision, if installed (default %(default)s)")
    p.add_argument("--data-dir", metavar="DIR", help="where MNIST is kept (default ./data)")
    p.add_argument("--wandb", choices=("disabled", "offline", "online"), default="offline",
                   help="wandb mode (default offline: `wandb sync` uploads it later)")
    model = p.add_argument_group("model and estimator")
    model.add_argument("--latent-dim", type=positive_int, default=d.latent_dim, metavar="N",
                       help="Gaussian dimensions, or categorical variables (default "
                            "%(default)s)")
    model.add_argument("--classes", type=positive_int, default=d.classes, metavar="N",
                       help="classes per categorical variable (default %(default)s)")
    model.add_argument("--hidden", type=positive_int, default=d.hidden, metavar="N",
                       help="hidden units of the encoder and of the decoder (default "
                            "%(default)s)")
    model.add_argument("--samples", type=positive_int, default=d.num_samples, metavar="M",
                       help="latent draws per image per step, for every estimator; score "
                            "uses the leave-one-out baseline when M >= 2 (default "
                            "%(default)s)")
    model.add_argument("--mc-samples", type=positive_int, default=d.mc_samples, metavar="K",
                       help="gumbel_rao: conditional Gumbel draws (default %(default)s)")
    model.add_argument("--tau", type=float, default=d.tau, metavar="T",
                       help="start temperature of the relaxations (default %(default)s)")
    model.add_argument("--tau-min", type=float, default=d.tau_min, metavar="T",
                       help="its floor (default %(default)s)")
    model.add_argument("--tau-rate", type=float, default=d.tau_rate, metavar="R",
                       help="tau_t = max(tau_min, tau * exp(-R t)) (default %(default)s)")
    model.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="B",
                       help="images per step (default %(default)s)")
    model.add_argument("--lr", type=float, default=d.lr, help="Adam's step size "
                       "(default %(default)s)")
    measure = p.add_argument_group("measurements")
    measure.add_argument("--eval-every", type=positive_int, default=d.eval_every,
                         metavar="N", help="steps between ELBO and gradient-variance "
                                           "measurements (default %(default)s)")
    measure.add_argument("--iw-samples", type=positive_int, default=d.iw_samples,
                         metavar="K", help="K of the final importance-weighted bound "
                                           "(default %(default)s)")
    measure.add_argument("--grad-samples", type=at_least_two, default=d.grad_samples,
                         metavar="K", help="independent gradient estimates per variance "
                                           "measurement (default %(default)s)")
    measure.add_argument("--device", default=d.device, help="cpu, cuda, auto (default cpu: "
                         "the models are small)")
    measure.add_argument("--torch-threads", type=int, default=d.torch_threads, metavar="N",
                         help="torch CPU threads; 0: the idle cores (default %(default)s: "
                              "the tensors are small)")
    return p


def vae_main(args: list[str]) -> int:
    opts = vae_parser().parse_args(args)
    from pathwise.analysis import vae

    cfg = vae.VAEConfig(
        latent=opts.latent, estimator=opts.estimator, data=opts.data, data_dir=opts.data_dir,
        seed=opts.seed, steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr,
        hidden=opts.hidden, latent_dim=opts.latent_dim, classes=opts.classes,
        num_samples=opts.samples, mc_samples=opts.mc_samples, tau=opts.tau,
        tau_min=opts.tau_min, tau_rate=opts.tau_rate, eval_every=opts.eval_every,
        iw_samples=opts.iw_samples, grad_samples=opts.grad_samples, device=opts.device,
        torch_threads=opts.torch_threads)
    run_dir, result = vae.run(cfg, opts.out, wandb_mode=opts.wandb)
    summary = {"latent": cfg.latent, "estimator": cfg.estimator, "data": cfg.data,
               "seed": cfg.seed, **result.to_dict(), "run_dir": str(run_dir)}
    if opts.json:
        print(json.dumps(summary))
        return 0
    r = result
    out = console()
    out.print(f"[bold]pathwise lab vae[/bold]: {cfg.latent} latent, {cfg.estimator}, "
              f"{cfg.data}, {r.steps} steps in {r.seconds:.1f}s", highlight=False)
    out.print(f"  test ELBO   {r.test_elbo:8.3f} ± {r.test_elbo_se:.2g} nats/image "
              f"(importance-weighted bound, K={r.iw_samples}: {r.test_iw_bound:.3f} ± "
              f"{r.test_iw_bound_se:.2g})", highlight=False)
    out.print(f"  train ELBO  {r.train_elbo:8.3f}", highlight=False)
    snr = "-" if r.grad_snr is None else f"{r.grad_snr:.3g}"
    out.print(f"  encoder-gradient variance {r.grad_variance:.4g} ± {r.grad_variance_se:.2g} "
              f"({cfg.grad_samples} estimates), median SNR {snr}", highlight=False)
    out.print(f"  {run_dir}", highlight=False)
    out.print(f"  seeds and estimators side by side: {PROG} compare {run_dir.parent.parent} "
              f"--metric eval/test_elbo", highlight=False)
    return 0


# -- pathwise lab horizon ----------------------------------------------------------------------
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
    out.print(f"[bold]pathwise lab horizon[/bold]: growth of a gradient estimate's variance up "
              f"to the longest horizon, from the shortest and from a quarter of the longest (a "
              f"small factor: it levels off; far more: it explodes); {results['seconds']:.1f}s",
              highlight=False)
    for g in results["growth"]:
        out.print(f"  {g['env']:<28} {g['estimator']:<9} H {g['from']} → {g['to']}: "
                  f"×{g['ratio']:.3g};  H {g['tail_from']} → {g['to']}: ×{g['tail_ratio']:.3g}",
                  highlight=False)
    goal = results["goal"]
    if goal["ratio"] is not None:
        verdict = "reproduced" if goal["met"] else "not reproduced"
        out.print(f"  chaotic task, pathwise: ×{goal['ratio']:.3g} (≥ {goal['target']:g}×: "
                  f"PIPPS {verdict})", highlight=False)
    for path in results["figures"]:
        out.print(f"  {path}", highlight=False)
    out.print(f"  {results['report']}", highlight=False)
    return 0
