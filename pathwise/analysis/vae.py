"""A variational autoencoder trained with each gradient estimator (``pathwise lab vae``).

The estimators of ``pathwise.policies`` know nothing of RL; here they train the model that made
the reparameterization trick famous. Binary images x, a latent z and

    p(z)      N(0, I) on R^d (``gaussian``), or uniform over k variables of n classes each
              (``categorical``, one-hot z of shape (k, n));
    p(x|z)    Π_pixels Bernoulli(x_i; sigmoid(decoder(z)_i));
    q(z|x)    Independent(Normal(μ(x), σ(x)), 1), or Independent(GumbelSoftmax(logits(x), τ), 1);

    ELBO(x) = E_{q(z|x)}[log p(x|z)] − KL(q(z|x) ‖ p(z))     (Kingma & Welling 2014, eq. 3)

Per image the estimator sees only the reconstruction cost, −log p(x|z); the KL term has a closed
form for both posteriors and is added exactly, so estimators differ only in how they treat the
cost (as the seam treats SAC's entropy):

    loss = mean_x [ estimator(q(·|x), cost=−log p(x|·)) + KL(q(·|x) ‖ p) ]

whose gradient in the decoder is the ordinary one (the cost depends on it directly) and in the
encoder is the estimator's. The latent is sampled only by the library's distributions, through
the estimator while training and ``q.sample`` (exact one-hot draws for the categorical) when
evaluating.

Estimators: Gaussian latent ``pathwise`` (rsample: Kingma & Welling's SGVB) or ``score``
(REINFORCE with the leave-one-out baseline over the ``num_samples`` draws, Kool et al. 2019).
Categorical latent: ``pathwise`` (Gumbel-softmax, Jang et al. 2017; the Concrete relaxation,
Maddison et al. 2017), ``straight_through_gumbel`` (``pathwise`` on a ``hard=True``
distribution: one-hot forward, relaxed gradient), ``straight_through``, ``gumbel_rao``,
``reinmax``, ``score`` and, for a latent small enough to enumerate, ``exact``. Every estimator
draws ``num_samples`` latents per image per step, so they compare at an equal number of decoder
evaluations. The relaxations' temperature follows Jang et al. (2017, §4.1):
τ_t = max(τ_min, τ_0 · exp(−r·t)).

Sizes (``VAEConfig``). One hidden layer of 128 ReLU units in the encoder and the decoder; an
8-dimensional Gaussian latent; a categorical latent of 8 variables × 8 classes. Jang et al. use
20 × 10 for 784-pixel MNIST; on the 64-pixel digits a trained posterior uses about 5 nats of
KL, a third of the log 8^8 = 16.6 nats an 8 × 8 latent can carry, so a larger one adds work (a
Gumbel-Rao step costs in proportion to k·n) and no capacity the data asks for.

Measured (module functions, logged against ``global_step`` = gradient steps):
* ``elbo``: the ELBO per image in nats, by Monte Carlo over ``samples`` exact draws of z with
  the KL in closed form, and its standard error;
* ``iw_bound``: the importance-weighted bound L_K = E[log (1/K) Σ_k p(x, z_k)/q(z_k|x)]
  (Burda, Grosse, Salakhutdinov 2016, eq. 8), ELBO = L_1 ≤ L_K ≤ log p(x);
* ``encoder_gradients``: K independent estimates of the encoder's gradient on a fixed batch,
  summarized by ``pathwise.analysis.diagnostics.gradient_stats`` (variance, SNR).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from pathwise.agents.optim import make_adam
from pathwise.analysis import vae_data
from pathwise.analysis.diagnostics import gradient_stats, measurement_seed
from pathwise.errors import ConfigError, TrainingError
from pathwise.policies.distributions import GumbelSoftmax
from pathwise.policies.estimators import get_estimator
from pathwise.policies.networks import mlp
from pathwise.training.runtime import auto_threads, resolve_device, seed_everything

LATENTS = ("gaussian", "categorical")
# Estimator names per latent. ``straight_through_gumbel`` is ``pathwise`` on a hard
# GumbelSoftmax: a name of its own, so that its runs group apart from Gumbel-softmax's.
ESTIMATORS = {
    "gaussian": ("pathwise", "score"),
    "categorical": ("pathwise", "straight_through_gumbel", "straight_through", "gumbel_rao",
                    "reinmax", "score", "exact"),
}
EXACT_MAX_ACTIONS = 4096  # the exact estimator enumerates classes**variables joint latents
EVAL_ROWS = 1 << 16  # decoder rows per evaluation chunk (images × draws)


@dataclass
class VAEConfig:
    """Everything a ``lab vae`` run is; ``pathwise lab vae --help`` documents each field."""

    latent: str = "gaussian"
    estimator: str = "pathwise"
    data: str = "digits"
    data_dir: str | None = None  # MNIST's folder (default ./data)
    seed: int = 0
    steps: int = 3000
    batch_size: int = 100
    lr: float = 1e-3
    hidden: int = 128  # units of the one hidden layer of the encoder and of the decoder
    latent_dim: int = 8  # Gaussian dimensions, or categorical variables k
    classes: int = 8  # categorical classes n per variable
    num_samples: int = 4  # latent draws per image per step, every estimator
    mc_samples: int = 10  # gumbel_rao: conditional Gumbel draws per backward pass
    tau: float = 1.0  # the relaxations' temperature τ_0 ...
    tau_min: float = 0.5  # ... annealed to τ_min ...
    tau_rate: float = 3e-4  # ... at rate r per step: τ_t = max(τ_min, τ_0·exp(−r·t))
    log_every: int = 100
    eval_every: int = 500
    eval_samples: int = 16  # latent draws per image for the periodic ELBOs
    eval_images: int = 2000  # at most this many images of each split for the periodic ELBOs
    final_samples: int = 100  # latent draws per image for the final ELBOs
    iw_samples: int = 1000  # K of the final importance-weighted bound
    grad_samples: int = 16  # independent estimates for the encoder-gradient statistics
    grad_batch: int = 100  # the fixed training images they are measured on
    device: str = "cpu"
    # Tensors of a few thousand numbers: a second thread costs more in synchronisation than
    # it saves, and on a shared machine much more. 0: the idle cores (as ``pathwise train``).
    torch_threads: int = 1

    @property
    def env(self) -> str:
        """The run's "env" for ``pathwise compare``: one group per latent and data set."""
        return f"vae-{self.latent}-{self.data}"

    @property
    def hard(self) -> bool:
        """Straight-through Gumbel: ``pathwise`` on a GumbelSoftmax with ``hard=True``."""
        return self.estimator == "straight_through_gumbel"

    @property
    def relaxed(self) -> bool:
        """Whether the temperature matters (a categorical latent, any estimator but the
        unbiased ones, which sample exactly)."""
        return self.latent == "categorical" and self.estimator not in ("score", "exact")


def check_config(cfg: VAEConfig) -> None:
    """A one-line ``ConfigError`` for settings that cannot run."""
    if cfg.latent not in LATENTS:
        raise ConfigError(f"--latent {cfg.latent}: choose from {', '.join(LATENTS)}")
    valid = ESTIMATORS[cfg.latent]
    if cfg.estimator not in valid:
        raise ConfigError(f"--estimator {cfg.estimator} does not apply to a {cfg.latent} "
                          f"latent; choose from {', '.join(valid)}")
    if cfg.data not in vae_data.DATASETS:
        raise ConfigError(f"--data {cfg.data}: choose from {', '.join(vae_data.DATASETS)}")
    for name in ("steps", "batch_size", "hidden", "latent_dim", "num_samples", "mc_samples",
                 "log_every", "eval_every", "eval_samples", "eval_images", "final_samples",
                 "iw_samples", "grad_batch"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.torch_threads < 0:
        raise ConfigError(f"torch_threads must be >= 0 (0: the idle cores), got "
                          f"{cfg.torch_threads}")
    if cfg.classes < 2:
        raise ConfigError(f"classes must be >= 2, got {cfg.classes}")
    if cfg.grad_samples < 2:
        raise ConfigError(f"grad_samples must be >= 2 (a variance needs two estimates), "
                          f"got {cfg.grad_samples}")
    if not (cfg.lr > 0 and cfg.tau > 0 and cfg.tau_min > 0 and cfg.tau_rate >= 0):
        raise ConfigError("lr, tau and tau_min must be > 0 and tau_rate >= 0")
    if cfg.estimator == "exact" and cfg.classes**cfg.latent_dim > EXACT_MAX_ACTIONS:
        raise ConfigError(f"--estimator exact enumerates {cfg.classes}^{cfg.latent_dim} "
                          f"latents, more than {EXACT_MAX_ACTIONS}; use a sampling estimator "
                          f"or a smaller latent (--latent-dim, --classes)")


def temperature(cfg: VAEConfig, step: int) -> float:
    """Jang et al. (2017, §4.1): τ = max(τ_min, τ_0·exp(−r·t)), here at every step t."""
    return max(cfg.tau_min, cfg.tau * math.exp(-cfg.tau_rate * step))


# -- the model -------------------------------------------------------------------------------
class GaussianLatent:
    """q(z|x) = N(μ, diag σ²), p(z) = N(0, I) on R^d."""

    def __init__(self, dim: int):
        self.dim = dim
        self.params = 2 * dim  # encoder outputs: μ and σ's pre-activation
        self.size = dim  # decoder inputs

    def posterior(self, out: torch.Tensor, tau: float = 1.0, hard: bool = False
                  ) -> Distribution:
        loc, raw = out.chunk(2, -1)
        # softplus, not exp(log σ): a score-function gradient early in training can push the
        # pre-activation far enough for exp to overflow; softplus grows linearly.
        scale = F.softplus(raw) + 1e-4
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def prior(self, like: torch.Tensor) -> Distribution:
        zeros = like.new_zeros(like.shape[:-1] + (self.dim,))
        return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def kl(self, q: Distribution) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²) (Kingma & Welling
        2014, appendix B)."""
        loc, scale = q.base_dist.loc, q.base_dist.scale
        return 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * scale.log()).sum(-1)

    def flatten(self, z: torch.Tensor) -> torch.Tensor:
        return z


class CategoricalLatent:
    """q(z|x) = Π_j Cat(softmax(logits_j)) over k variables of n classes (a GumbelSoftmax of
    batch (B, k) made Independent: event (k, n), Jang et al. 2017's factorized latent);
    p(z) uniform."""

    def __init__(self, variables: int, classes: int):
        self.variables, self.classes = variables, classes
        self.params = self.size = variables * classes

    def posterior(self, out: torch.Tensor, tau: float = 1.0, hard: bool = False
                  ) -> Distribution:
        logits = out.unflatten(-1, (self.variables, self.classes))
        return Independent(GumbelSoftmax(logits, tau, hard=hard, validate_args=False), 1)

    def prior(self, like: torch.Tensor) -> Distribution:
        logits = like.new_zeros(like.shape[:-1] + (self.variables, self.classes))
        return Independent(GumbelSoftmax(logits, validate_args=False), 1)

    def kl(self, q: Distribution) -> torch.Tensor:
        """KL(q ‖ uniform) = Σ_j Σ_c q_jc log(n·q_jc) = k log n − H(q): the categorical's
        entropy in closed form (the relaxation's density is never needed)."""
        return self.variables * math.log(self.classes) - q.entropy()

    def flatten(self, z: torch.Tensor) -> torch.Tensor:
        return z.flatten(-2)


class VAE(nn.Module):
    """Encoder and decoder MLPs (one hidden ReLU layer each) around a latent."""

    def __init__(self, data_dim: int, latent: GaussianLatent | CategoricalLatent,
                 hidden: int = 128):
        super().__init__()
        self.latent = latent
        self.encoder = mlp(data_dim, latent.params, [hidden])
        self.decoder = mlp(latent.size, data_dim, [hidden])

    def posterior(self, x: torch.Tensor, tau: float = 1.0, hard: bool = False) -> Distribution:
        """q(z|x), batch shape x.shape[:-1]."""
        return self.latent.posterior(self.encoder(x), tau, hard)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) = Σ_i x_i log σ(l_i) + (1 − x_i) log σ(−l_i), l = decoder(z), for z of
        shape (*sample, *batch, *event): (*sample, *batch). With logits, by
        ``binary_cross_entropy_with_logits``: no log of a sigmoid rounded to 0 or 1."""
        logits = self.decoder(self.latent.flatten(z))
        x = x.expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def build_model(cfg: VAEConfig, data_dim: int) -> VAE:
    latent = (GaussianLatent(cfg.latent_dim) if cfg.latent == "gaussian"
              else CategoricalLatent(cfg.latent_dim, cfg.classes))
    return VAE(data_dim, latent, cfg.hidden)


def build_estimator(cfg: VAEConfig):
    """The library's estimator for ``cfg.estimator`` (``straight_through_gumbel`` is
    ``pathwise``; ``hard`` goes on the distribution) with this run's options."""
    name = "pathwise" if cfg.estimator == "straight_through_gumbel" else cfg.estimator
    if name == "exact":
        return get_estimator(name, max_actions=EXACT_MAX_ACTIONS)
    options = {"num_samples": cfg.num_samples}
    if name == "score" and cfg.num_samples >= 2:
        options["baseline"] = "mean"  # leave-one-out over the num_samples draws
    if name == "gumbel_rao":
        options["mc_samples"] = cfg.mc_samples
    return get_estimator(name, **options)


# -- the objective ---------------------------------------------------------------------------
def negative_elbo(model: VAE, estimator, x: torch.Tensor, tau: float = 1.0,
                  hard: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(surrogate, kl)`` per image: the surrogate's gradient is the estimator's estimate of
    ∇(−ELBO(x)) and its value an estimate of −ELBO(x) (of the relaxed model's, for a
    relaxation: the decoder then sees soft latents)."""
    q = model.posterior(x, tau, hard)
    kl = model.latent.kl(q)
    reconstruction = estimator(q, lambda z: -model.log_likelihood(x, z))
    return reconstruction + kl, kl


@contextlib.contextmanager
def own_randomness(seed: int, device: torch.device):
    """torch's generators seeded for a block and restored after it: what a measurement draws
    never shifts training's random stream."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def elbo(model: VAE, x: torch.Tensor, samples: int) -> tuple[float, float]:
    """``(mean, standard error)`` over the images ``x`` of the ELBO in nats, by Monte Carlo
    over ``samples`` exact draws of z per image and the KL in closed form.

    Each image's E_q[log p(x|z)] is a mean of ``samples`` draws; the images are fixed, so the
    standard error is the Monte Carlo one: sqrt(Σ_i Var_i / samples) / N.
    """
    total, variance = 0.0, 0.0
    for chunk in x.split(max(1, EVAL_ROWS // samples)):
        q = model.posterior(chunk)
        ll = model.log_likelihood(chunk, q.sample((samples,)))  # (samples, n)
        total += float((ll.mean(0) - model.latent.kl(q)).sum())
        if samples > 1:
            variance += float(ll.var(0).sum())
    n = x.shape[0]
    return total / n, math.sqrt(variance / samples) / n


@torch.no_grad()
def iw_bound(model: VAE, x: torch.Tensor, k: int, repeats: int = 2) -> tuple[float, float]:
    """``(mean, standard error)`` over the images ``x`` of the importance-weighted bound

        L_K(x) = log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x) i.i.d.

    (Burda et al. 2016, eq. 8; logsumexp − log K), estimated ``repeats`` times per image;
    the standard error comes from the spread of the repeats."""
    estimates = []
    for chunk in x.split(max(1, EVAL_ROWS // k)):
        q = model.posterior(chunk)
        prior = model.latent.prior(chunk)
        rows = []
        for _ in range(repeats):
            z = q.sample((k,))  # (k, n, *event)
            log_w = model.log_likelihood(chunk, z) + prior.log_prob(z) - q.log_prob(z)
            rows.append(torch.logsumexp(log_w, 0) - math.log(k))
        estimates.append(torch.stack(rows))  # (repeats, n)
    values = torch.cat(estimates, 1).double()
    n = values.shape[1]
    se = math.sqrt(float(values.var(0).sum()) / repeats) / n if repeats > 1 else math.nan
    return float(values.mean()), se


def encoder_gradients(model: VAE, estimator, x: torch.Tensor, k: int, tau: float = 1.0,
                      hard: bool = False) -> torch.Tensor:
    """(K, D): ``k`` independent estimates of ∇_encoder mean_x(−ELBO(x)) on the images ``x``,
    flattened over the encoder's parameters."""
    params = list(model.encoder.parameters())
    rows = []
    for _ in range(k):
        surrogate, _ = negative_elbo(model, estimator, x, tau, hard)
        grads = torch.autograd.grad(surrogate.mean(), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


# -- training --------------------------------------------------------------------------------
def batches(data: torch.Tensor, size: int, generator: torch.Generator):
    """Minibatches of ``size`` images, reshuffled every epoch, forever."""
    while True:
        order = torch.randperm(len(data), generator=generator, device="cpu").to(data.device)
        for start in range(0, len(data) - size + 1, size):
            yield data[order[start:start + size]]


@dataclass
class Result:
    """What a run found (``--json`` prints it). ELBOs and bounds in nats per image: the train
    ELBO on the first ``eval_images`` training images, the test ELBO and bound on the whole
    test set. ``seconds``: the whole run; ``train_seconds``: up to the last step."""

    train_elbo: float
    test_elbo: float
    test_elbo_se: float
    test_iw_bound: float
    test_iw_bound_se: float
    iw_samples: int
    grad_variance: float
    grad_variance_se: float
    grad_snr: float | None  # median over the encoder's parameters of |mean| / std
    steps: int
    seconds: float
    train_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


Logger = Callable[[dict], None]


def train(cfg: VAEConfig, log: Logger | None = None, data: vae_data.Data | None = None
          ) -> tuple[VAE, Result]:
    """Train a VAE as ``cfg`` says; ``log`` receives every metric record (with
    ``global_step`` and ``time``). Returns the model and the final measurements."""
    check_config(cfg)
    log = log or (lambda record: None)
    start = time.perf_counter()
    device = resolve_device(cfg.device, "--device ")
    torch.set_num_threads(cfg.torch_threads or auto_threads())
    data = data or vae_data.load(cfg.data, cfg.data_dir)
    train_x, test_x = data.train.to(device), data.test.to(device)
    if len(train_x) < cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {len(train_x)} training "
                          f"images")
    seed_everything(cfg.seed)
    model = build_model(cfg, data.dim).to(device)
    estimator = build_estimator(cfg)
    optimizer = make_adam(model.parameters(), cfg.lr)
    stream = batches(train_x, cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    hard = cfg.hard
    fixed = train_x[:cfg.grad_batch]  # the gradient statistics' batch, the same every time
    train_eval, test_eval = train_x[:cfg.eval_images], test_x[:cfg.eval_images]

    def measure(step: int, tau: float, final: bool = False):
        """Test and train ELBOs and the encoder-gradient statistics, on their own seed."""
        samples = cfg.final_samples if final else cfg.eval_samples
        with own_randomness(measurement_seed(cfg.seed, step), device):
            grads = encoder_gradients(model, estimator, fixed, cfg.grad_samples, tau, hard)
            stats = gradient_stats(cfg.estimator, grads, noiseless=cfg.estimator == "exact")
            train_elbo, _ = elbo(model, train_eval, samples)
            test_elbo, test_se = elbo(model, test_x if final else test_eval, samples)
        record = {"eval/train_elbo": train_elbo, "eval/test_elbo": test_elbo,
                  "eval/test_elbo_se": test_se, **stats.metrics(),
                  f"grad/{cfg.estimator}/variance_se": stats.variance_se}
        return record, stats

    sums = torch.zeros(2, device=device)  # −ELBO surrogate and KL, summed since the last log
    clock = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        tau = temperature(cfg, step)
        x = next(stream)
        surrogate, kl = negative_elbo(model, estimator, x, tau, hard)
        loss = surrogate.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += torch.stack([loss.detach(), kl.detach().mean()])

        if step % cfg.log_every == 0 or step == cfg.steps:
            count = step % cfg.log_every or cfg.log_every
            neg_elbo, mean_kl = (sums / count).tolist()
            sums.zero_()
            if not math.isfinite(neg_elbo):
                raise TrainingError(f"the loss became {neg_elbo} by step {step} "
                                    f"(estimator {cfg.estimator}); try a lower --lr")
            now = time.perf_counter()
            record = {"losses/neg_elbo": neg_elbo, "losses/kl": mean_kl,
                      "losses/reconstruction": neg_elbo - mean_kl,
                      "charts/sps": count / (now - clock)}
            if cfg.relaxed:
                record["charts/temperature"] = tau
            log({"global_step": step, "time": now - start, **record})
            clock = time.perf_counter()
        if step % cfg.eval_every == 0 and step != cfg.steps:
            record, _ = measure(step, tau)
            log({"global_step": step, "time": time.perf_counter() - start, **record})
            clock = time.perf_counter()

    train_seconds = time.perf_counter() - start
    record, stats = measure(cfg.steps, temperature(cfg, cfg.steps), final=True)
    with own_randomness(measurement_seed(cfg.seed, cfg.steps + 1), device):
        bound, bound_se = iw_bound(model, test_x, cfg.iw_samples)
    record.update({"eval/test_iw_bound": bound, "eval/test_iw_bound_se": bound_se})
    seconds = time.perf_counter() - start
    log({"global_step": cfg.steps, "time": seconds, **record})
    return model, Result(
        train_elbo=record["eval/train_elbo"], test_elbo=record["eval/test_elbo"],
        test_elbo_se=record["eval/test_elbo_se"], test_iw_bound=bound,
        test_iw_bound_se=bound_se, iw_samples=cfg.iw_samples, grad_variance=stats.variance,
        grad_variance_se=stats.variance_se, grad_snr=stats.snr_median, steps=cfg.steps,
        seconds=seconds, train_seconds=train_seconds)


# -- a run: run dir, config.yaml, metrics.jsonl, wandb ----------------------------------------
def config_dict(cfg: VAEConfig, run_dir: Path, wandb_mode: str, project: str) -> dict:
    """config.yaml: the resolved settings, keyed as ``pathwise compare`` groups runs
    (``env``, ``agent.name``, ``estimator.name``, ``seed``)."""
    model = ("latent", "hidden", "latent_dim") + (("classes",) if cfg.latent == "categorical"
                                                  else ())
    estimator = {"name": cfg.estimator, "num_samples": cfg.num_samples}
    if cfg.estimator == "gumbel_rao":
        estimator["mc_samples"] = cfg.mc_samples
    if cfg.relaxed:
        estimator["temperature"] = {"start": cfg.tau, "min": cfg.tau_min, "rate": cfg.tau_rate}
    taken = set(model) | {"classes", "estimator", "num_samples", "mc_samples", "tau",
                          "tau_min", "tau_rate", "seed"}
    rest = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in taken}
    return {"env": cfg.env, "agent": {"name": "vae", **{k: getattr(cfg, k) for k in model}},
            "estimator": estimator, "seed": cfg.seed, **rest,
            "run_dir": str(run_dir), "wandb": {"mode": wandb_mode, "project": project}}


def default_run_dir(cfg: VAEConfig) -> Path:
    """``runs/vae-<latent>/<estimator>/s<seed>-<timestamp>``, never an existing one."""
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"vae-{cfg.latent}" / cfg.estimator / f"s{cfg.seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run(cfg: VAEConfig, run_dir: str | Path | None = None, wandb_mode: str = "offline",
        project: str = "pathwise") -> tuple[Path, Result]:
    """One ``lab vae`` run in its own run directory: config.yaml, metrics.jsonl, results.json
    and (unless disabled) a wandb run, group ``vae-<latent>``, job_type the estimator.

    metrics.jsonl, against ``global_step`` (gradient steps), every ``log_every`` steps:
    ``losses/neg_elbo`` (the training surrogate's value: the relaxed model's −ELBO for
    Gumbel-softmax), ``losses/kl``, ``losses/reconstruction``, ``charts/sps`` and, for the
    relaxations, ``charts/temperature``; every ``eval_every`` steps and at the end:
    ``eval/train_elbo``, ``eval/test_elbo``, ``eval/test_elbo_se`` and the encoder-gradient
    statistics ``grad/<estimator>/variance``, ``.../variance_se``, ``.../snr_median``, ...;
    at the end also ``eval/test_iw_bound`` and ``eval/test_iw_bound_se``.
    """
    import json

    from omegaconf import OmegaConf

    from pathwise.training.run_dir import atomic_write_text, make_run_dir
    from pathwise.training.tracking import JsonlWriter, check_wandb_mode, open_wandb_run

    check_config(cfg)
    check_wandb_mode(wandb_mode, "--wandb ")
    resolve_device(cfg.device, "--device ")  # a device this machine lacks: before any mkdir
    cfg = replace(cfg, torch_threads=cfg.torch_threads or auto_threads())  # decided once
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"{run_dir} already exists and is not empty; choose another "
                          f"--out (a run directory is never overwritten)")
    data = vae_data.load(cfg.data, cfg.data_dir)  # a missing dependency fails before mkdir
    make_run_dir(run_dir)
    config = config_dict(cfg, run_dir, wandb_mode, project)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    writer = JsonlWriter(run_dir / "metrics.jsonl")
    wandb_run = open_wandb_run(wandb_mode, project=project, option="--wandb ",
                               group=f"vae-{cfg.latent}", job_type=cfg.estimator,
                               tags=["vae", cfg.latent, cfg.estimator, cfg.data],
                               config=config, run_dir=run_dir, name=run_dir.name)

    def log(record: dict) -> None:
        writer.log(record)
        if wandb_run is not None:
            wandb_run.log(record)

    try:
        _, result = train(cfg, log, data)
    except BaseException:
        if wandb_run is not None:
            wandb_run.finish(1)
        raise
    finally:
        writer.close()
    atomic_write_text(run_dir / "results.json", json.dumps(result.to_dict(), indent=2) + "\n")
    if wandb_run is not None:
        wandb_run.summary(result.to_dict())
        wandb_run.finish(0)
    return run_dir, result
