"""Estimator diagnostics: how noisy and how biased each actor-gradient estimator is, measured
on the same states, the same critic and the same step.

For an agent's current state and a fixed batch of states s_1..s_N, the objective is the one
the actor is trained on (SAC: ``SAC.actor_cost``),

    J(θ) = 1/N Σ_n E_{a ~ π_θ(·|s_n)} [ α log π_θ(a|s_n) − min_i Q_i(s_n, a) ],

and every estimator that applies draws K independent estimates g⁽¹⁾..g⁽ᴷ⁾ of ∇θ J, flattened
over the actor's parameters. Per parameter j (docs/estimator-facts.md §5; Rainforth et al.
2018, "Tighter Variational Bounds are Not Necessarily Better", for the SNR):

    ḡ_j = 1/K Σ_k g⁽ᵏ⁾_j,   Var_j = 1/(K−1) Σ_k (g⁽ᵏ⁾_j − ḡ_j)²,   SNR_j = |ḡ_j| / sqrt(Var_j)

reported as ``variance`` Σ_j Var_j (the expected squared distance of one estimate from its
mean) and ``cosine`` cos(ḡ, g_ref), and as statistics that carry a noise floor when read raw
(facts §6). ḡ averages K noisy estimates, so E‖ḡ‖² = ‖E g‖² + Σ_j Var_j / K even where the
true gradient is zero, and E‖ḡ − g_ref‖² = ‖bias‖² + Σ_j Var_j / K: noise adds to a bias in
quadrature, not linearly. Each such statistic comes raw, floor-corrected, and with its floor
(its value for pure noise) beside it:

    statistic                  value                                 floor (pure noise)
    signal_to_noise            ‖ḡ‖² / Σ Var                          1/K
    signal                     ‖ḡ‖² − Σ Var / K                      signal_floor = Σ Var / K
    signal_to_noise_corrected  signal / Σ Var                        0
    snr                        mean_j SNR_j                          snr_floor = E|T| / √K
    snr_median                 median_j SNR_j                        snr_median_floor
    bias                       ‖ḡ − g_ref‖ (g_ref exact)             bias_se = √(Σ Var / K)
    bias_corrected             √max(0, ‖ḡ − g_ref‖² − Σ Var / K)     0

``signal`` is unbiased for ‖E g‖² (so it can come out negative); ``bias_corrected`` is the
square root of an unbiased estimate of ‖bias‖², clipped at 0. T is Student's t with K − 1
degrees of freedom: for a parameter whose true gradient is zero and whose noise is Gaussian,
√K·ḡ_j/√Var_j ~ t_{K−1} exactly, so the SNR floors (``snr_floors``; 0.210 for the mean and
0.173 for the median at K = 16) are what every parameter of a pure-noise gradient shows. The
median is the robust summary: a few parameters with a large SNR_j pull the mean, not it.

Estimators (names as logged, ``grad/<name>/<statistic>``):

* ``pathwise``: reparameterized; tanh-Gaussian ``rsample`` (Box) or Gumbel-softmax at the
  agent's current temperature (Discrete, biased for τ > 0).
* ``score``: score function with the leave-one-out baseline (Kool et al. 2019), as
  ``estimator=score`` trains by default; needs ``num_samples`` ≥ 2.
* ``score_no_baseline``: score function, no baseline.
* ``straight_through``, ``gumbel_rao``, ``reinmax`` (discrete actions): the one-hot sample
  forward, each its own surrogate Jacobian backward (``policies.estimators``).
* ``exact`` (discrete actions): the all-action sum; no sampling noise, and the reference
  g_ref. For factorized actions (MultiDiscrete, MultiBinary, ``action_bins``) it enumerates
  the joint set and applies while that holds at most ``estimator.max_actions`` actions (the
  run's own when it trains with ``exact``, else the default 4,096); beyond,
  g_ref is a score-function estimate with ``reference_samples`` draws per state and the
  leave-one-out baseline (unbiased, not exact: no ``bias``, as for Box).

Sampling estimators use the same ``num_samples`` draws per state, so their variances compare
at equal cost. For Box actions g_ref is a pathwise estimate with ``reference_samples`` draws
per state (unbiased, not exact: no ``bias`` is reported; its own noise lowers the cosines a
little, by a factor ≈ 1/sqrt(1 + Var_ref/‖g‖²)).

Vectorized. The surrogate depends on θ only through the distribution's parameters φ (loc and
scale, or logits) of the N states. The K estimates are drawn on K leaf copies of φ (batch
shape (K, N)); one backward gives each copy's ∂surrogate/∂φ, since copy k's surrogate depends
on copy k alone; then ∂φ/∂θ is applied to the K cotangents in one batched vector-Jacobian
product (``is_grads_batched``, i.e. ``torch.func.vmap``). The actor runs forward once, the
cost sees K·M·N actions in a few large calls (chunks of ``CHUNK_ACTIONS`` for a critic
network): one batched pass costs less than K separate backward passes, down to the critic's
own work on K·M·N actions.

REINFORCE has no critic, so there is no per-state cost to estimate the gradient of, and
``exact`` does not apply. Its diagnostics draw a batch of fresh episodes in an env of their
own and treat each episode's REINFORCE estimate Σ_t (G_t − b_t) ∇θ log π(a_t|s_t) as one of K
estimates (``score``: the agent's baseline, V(s_t) or the leave-one-out mean return;
``score_no_baseline``: b = 0). There is no reference: ``cosine`` and ``bias`` are absent.

Randomness. Everything here runs under ``torch.random.fork_rng``, seeded from (seed, step)
by a ``numpy.random.SeedSequence`` of its own: switching diagnostics on does not change one
random number that training draws, nor the agent's state (gradients are taken with
``torch.autograd.grad``, never accumulated into ``.grad``).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.distributions import Distribution, Independent, Normal

from pathwise.policies.distributions import GumbelSoftmax, TanhNormal
from pathwise.policies.estimators import (
    Exact,
    GumbelRao,
    Pathwise,
    ReinMax,
    Score,
    StraightThrough,
)


# -- one estimator's statistics -------------------------------------------------------------
@dataclass
class GradientStats:
    """Statistics of K gradient estimates of one estimator (module doc for the definitions).

    Undefined values are None: the SNRs and ``signal_to_noise*`` of a noiseless estimator,
    ``cosine`` without a reference, ``bias*`` without an exact one.
    """

    estimator: str
    samples: int  # K
    variance: float  # Σ_j Var_j
    variance_se: float  # standard error of ``variance`` (from the spread of ‖g⁽ᵏ⁾ − ḡ‖²)
    snr: float | None  # mean_j |ḡ_j| / std_j over parameters with std_j > 0
    signal_to_noise: float | None  # ‖ḡ‖² / Σ_j Var_j
    mean_norm: float  # ‖ḡ‖
    cosine: float | None = None  # cos(ḡ, g_ref)
    bias: float | None = None  # ‖ḡ − g_ref‖, g_ref exact
    bias_se: float = 0.0  # sqrt(Σ_j Var_j / K): ‖ḡ − E ḡ‖ from noise alone, the bias's floor
    signal: float | None = None  # ‖ḡ‖² − Σ_j Var_j / K, unbiased for ‖E g‖²
    signal_floor: float = 0.0  # Σ_j Var_j / K: what ‖ḡ‖² shows for a zero gradient
    signal_to_noise_corrected: float | None = None  # signal / Σ_j Var_j
    snr_median: float | None = None  # median_j |ḡ_j| / std_j
    snr_floor: float | None = None  # E|t_{K−1}| / √K: ``snr`` of a zero-mean gradient (K ≥ 3)
    snr_median_floor: float | None = None  # median |t_{K−1}| / √K: ``snr_median``'s floor
    bias_corrected: float | None = None  # sqrt(max(0, ‖ḡ − g_ref‖² − Σ_j Var_j / K))

    def metrics(self, prefix: str = "grad") -> dict[str, float]:
        """``{"grad/<estimator>/<statistic>": value}`` for the defined statistics."""
        values = {"variance": self.variance, "snr": self.snr, "snr_median": self.snr_median,
                  "signal_to_noise": self.signal_to_noise,
                  "signal_to_noise_corrected": self.signal_to_noise_corrected,
                  "signal": self.signal, "cosine": self.cosine, "bias": self.bias,
                  "bias_corrected": self.bias_corrected}
        if self.variance > 0:  # floors of a noisy estimator (an exact one has none)
            values.update(signal_floor=self.signal_floor, snr_floor=self.snr_floor,
                          snr_median_floor=self.snr_median_floor)
        if self.bias is not None:
            values["bias_se"] = self.bias_se
        return {f"{prefix}/{self.estimator}/{k}": float(v) for k, v in values.items()
                if v is not None}


@functools.lru_cache(maxsize=64)
def snr_floors(k: int) -> tuple[float, float]:
    """``(mean, median)`` of SNR_j = |ḡ_j| / sqrt(Var_j) for a parameter whose K estimates are
    i.i.d. Gaussian with mean zero: √K·SNR_j = |T|, T ~ Student's t with ν = K − 1 degrees of
    freedom (docs/estimator-facts.md §6), so

        mean   E|T|/√K = 2√ν Γ((ν+1)/2) / (√π (ν−1) Γ(ν/2)) / √K      (ν > 1; infinite at K = 2)
        median q/√K,  q the 0.75 quantile of t_ν (P(|T| ≤ q) = ½), found by integrating the
               density of |T| on [0, 1] (q ≤ 1 for every ν ≥ 1: at ν = 1, Cauchy, q = 1).
    """
    if k < 2:
        raise ValueError(f"snr_floors: needs K >= 2 estimates, got {k}")
    nu = k - 1
    log_norm = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    mean = (2 * math.sqrt(nu) * math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2))
            / (math.sqrt(math.pi) * (nu - 1))) if nu > 1 else math.inf
    t = np.linspace(0.0, 1.0, 20_001)
    density = 2 * np.exp(log_norm - (nu + 1) / 2 * np.log1p(t**2 / nu))  # of |T|
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(t))])
    median = float(np.interp(0.5, cdf, t))
    return mean / math.sqrt(k), median / math.sqrt(k)


def gradient_stats(name: str, grads: torch.Tensor, reference: torch.Tensor | None = None,
                   reference_exact: bool = False, noiseless: bool = False) -> GradientStats:
    """Statistics of the estimates ``grads`` (K, D) against ``reference`` (D,), in float64.

    ``noiseless``: the estimator draws nothing (exact), so its variance is 0 by construction,
    whatever rounding differences the K rows carry.
    """
    g = grads.detach().double()
    k = g.shape[0]
    mean = g.mean(0)
    if noiseless or k < 2:
        var = torch.zeros_like(mean) if noiseless else torch.full_like(mean, math.nan)
        spread = torch.zeros(k, dtype=g.dtype, device=g.device)
    else:
        centred = g - mean
        var = centred.pow(2).sum(0) / (k - 1)
        spread = centred.pow(2).sum(1) * (k / (k - 1))  # E[spread_k] = Σ_j Var_j
    total = float(var.sum())
    floor = total / k if total > 0 else 0.0  # E‖ḡ − E ḡ‖²: the noise in any ‖ḡ − c‖²
    variance_se = float(spread.std() / math.sqrt(k)) if k > 1 and not noiseless else 0.0
    std = var.sqrt()
    noisy = std > 0
    snr = snr_median = snr_floor = snr_median_floor = None
    if bool(noisy.any()):
        per_parameter = mean[noisy].abs() / std[noisy]
        snr, snr_median = float(per_parameter.mean()), float(per_parameter.median())
        snr_floor, snr_median_floor = snr_floors(k)
        if not math.isfinite(snr_floor):  # K = 2: E|t₁| (Cauchy) is infinite; no floor
            snr_floor = None
    sq_norm = float(mean.pow(2).sum())
    stats = GradientStats(
        estimator=name, samples=k, variance=total, variance_se=variance_se, snr=snr,
        signal_to_noise=sq_norm / total if total > 0 else None,
        mean_norm=math.sqrt(sq_norm), bias_se=math.sqrt(floor),
        signal=sq_norm - floor, signal_floor=floor,
        signal_to_noise_corrected=(sq_norm - floor) / total if total > 0 else None,
        snr_median=snr_median, snr_floor=snr_floor, snr_median_floor=snr_median_floor)
    if reference is not None:
        ref = reference.detach().double()
        denom = float(mean.norm() * ref.norm())
        stats.cosine = float(mean @ ref) / denom if denom > 0 else None
        if reference_exact:
            sq_bias = float((mean - ref).pow(2).sum())
            stats.bias = math.sqrt(sq_bias)
            stats.bias_corrected = math.sqrt(max(0.0, sq_bias - floor))
    return stats


# -- K estimates at the cost of about one ---------------------------------------------------
def _leaf(x: torch.Tensor, k: int | None) -> torch.Tensor:
    x = x.detach()
    if k is not None:
        x = x.unsqueeze(0).expand((k,) + x.shape)
    return x.clone().requires_grad_(True)


def detach_parameters(dist: Distribution, k: int | None = None):
    """``(copy, params, leaves)``: ``dist`` rebuilt on leaf copies of its parameters (with a
    leading batch dimension of ``k`` copies when ``k`` is given), the original parameter
    tensors (still in θ's graph), and the leaves, in matching order.

    Supports the policies' ``TanhNormal``, ``GumbelSoftmax`` and ``Independent`` of one
    (factorized actions), and ``torch`` ``Normal``.
    """
    if isinstance(dist, Independent):
        base, params, leaves = detach_parameters(dist.base_dist, k)
        copy = Independent(base, dist.reinterpreted_batch_ndims, validate_args=False)
        if hasattr(dist, "factor_sizes"):  # padded sub-actions (policies.policy): exact
            copy.factor_sizes = dist.factor_sizes  # enumerates their Π n_j real actions
        return copy, params, leaves
    if isinstance(dist, TanhNormal):
        params = (dist.loc, dist.scale)
        leaves = tuple(_leaf(p, k) for p in params)
        copy = TanhNormal(*leaves, dist.low, dist.high, event_dims=dist._event_dims,
                          validate_args=False)
    elif isinstance(dist, GumbelSoftmax):
        params = (dist.logits,)
        leaves = (_leaf(dist.logits, k),)
        copy = GumbelSoftmax(leaves[0], dist.temperature, hard=dist.hard, validate_args=False)
    elif isinstance(dist, Normal):
        params = (dist.loc, dist.scale)
        leaves = tuple(_leaf(p, k) for p in params)
        copy = Normal(*leaves, validate_args=False)
    else:
        raise TypeError(f"diagnostics: unsupported distribution {type(dist).__name__}")
    return copy, params, leaves


def flat_grad(outputs, inputs: Sequence[torch.Tensor], grad_outputs=None,
              batched: bool = False) -> torch.Tensor:
    """``autograd.grad`` flattened and concatenated over ``inputs`` (zeros where unused):
    (D,), or (K, D) with ``batched`` (``grad_outputs`` carrying a leading K dimension)."""
    grads = torch.autograd.grad(outputs, list(inputs), grad_outputs=grad_outputs,
                                retain_graph=True, allow_unused=True,
                                is_grads_batched=batched)
    lead = (grad_outputs[0].shape[0],) if batched else ()
    return torch.cat([
        (torch.zeros(lead + p.shape, dtype=p.dtype, device=p.device) if g is None else g)
        .reshape(lead + (-1,)) for g, p in zip(grads, inputs)], -1)


# Actions per chunk of copies when the cost is a network (Box SAC's critic): on a CPU, one call
# on many more rows than this gets slower, not faster, once the activations leave the cache.
CHUNK_ACTIONS = 2048


def sample_gradients(dist: Distribution, cost: Callable, estimator, params: Sequence,
                     k: int, alpha=0.0, chunk_actions: int | None = CHUNK_ACTIONS
                     ) -> torch.Tensor:
    """(K, D): ``k`` independent estimates, by ``estimator``, of ∇ mean_n E[cost + α log π]
    with respect to ``params``, where ``dist`` (batch shape (N,) or any) was computed from
    ``params`` in autograd's graph and ``cost`` depends on them only through the actions.

    Copy k of the distribution's parameters gets the k-th surrogate (module doc); copies are
    drawn in chunks of about ``chunk_actions`` actions (None: all at once), and θ's part of
    the chain rule is applied to all K cotangents at once.
    """
    per_chunk = k
    if chunk_actions is not None:
        draws = getattr(estimator, "num_samples", None) or dist.event_shape.numel()
        per_chunk = max(1, chunk_actions // max(1, draws * dist.batch_shape.numel()))
    cotangents, outputs = [], None
    for start in range(0, k, per_chunk):
        size = min(per_chunk, k - start)
        copy, outputs, leaves = detach_parameters(dist, size)
        surrogate = estimator(copy, cost, alpha=alpha)  # (size, *batch)
        per_copy = surrogate.reshape(size, -1).mean(1)
        # Row i depends on leaves[·][i] only: the gradient of the sum holds each ∂row_i/∂φ_i.
        cotangents.append(torch.autograd.grad(per_copy.sum(), leaves))
    stacked = tuple(torch.cat(parts) for parts in zip(*cotangents))
    return flat_grad(outputs, params, grad_outputs=stacked, batched=True)


def mean_gradient(dist: Distribution, cost: Callable, estimator, params: Sequence,
                  alpha=0.0) -> torch.Tensor:
    """(D,): one estimate by ``estimator``, straight through autograd (a reference)."""
    return flat_grad(estimator(dist, cost, alpha=alpha).mean(), params)


# -- a measurement ----------------------------------------------------------------------------
@dataclass
class Report:
    """Everything one measurement found, for logging, printing and JSON."""

    agent: str
    action_space: str  # "Box" | "Discrete" | "MultiDiscrete" (also MultiBinary, action_bins)
    trained_with: str  # the estimator that trains the actor
    reference: str  # how g_ref was computed ("none" for REINFORCE)
    states: int  # N (REINFORCE: steps in the episodes drawn)
    parameters: int  # D
    num_samples: int  # action draws per state of the sampling estimators
    seconds: float
    estimators: list[GradientStats] = field(default_factory=list)
    global_step: int | None = None
    temperature: float | None = None
    alpha: float | None = None

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for stats in self.estimators:
            out.update(stats.metrics())
        out["grad/seconds"] = self.seconds
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def estimators_for(discrete: bool, num_samples: int, exact: bool = True,
                   mc_samples: int = GumbelRao.mc_samples,
                   max_actions: int = Exact.max_actions) -> dict[str, object]:
    """The estimators that apply, by logged name, each with ``num_samples`` draws per state;
    ``exact=False`` leaves ``exact`` out (a joint action set too large to enumerate).
    ``mc_samples`` and ``max_actions``: Gumbel-Rao's and exact's options (``options_of``)."""
    chosen = {"pathwise": Pathwise(num_samples=num_samples)}
    if num_samples >= 2:
        chosen["score"] = Score(num_samples=num_samples, baseline="mean")
    chosen["score_no_baseline"] = Score(num_samples=num_samples, baseline="none")
    if discrete:
        chosen["straight_through"] = StraightThrough(num_samples=num_samples)
        chosen["gumbel_rao"] = GumbelRao(num_samples=num_samples, mc_samples=mc_samples)
        chosen["reinmax"] = ReinMax(num_samples=num_samples)
        if exact:
            chosen["exact"] = Exact(max_actions=max_actions)
    return chosen


def options_of(agent) -> dict[str, int]:
    """Gumbel-Rao's ``mc_samples`` and exact's ``max_actions`` as the agent trains with them
    (the defaults where it trains with another estimator): a run measures its own estimator."""
    trained = agent.estimator
    return {"mc_samples": getattr(trained, "mc_samples", GumbelRao.mc_samples),
            "max_actions": getattr(trained, "max_actions", Exact.max_actions)}


def exact_applies(agent) -> bool:
    """Whether ``exact`` can enumerate the agent's joint action set (at most ``max_actions``
    of ``options_of``; a Discrete(n) q-head always in practice)."""
    from pathwise.agents.sac import joint_actions

    nvec = getattr(agent, "action_nvec", None)
    return agent.discrete and (joint_actions(agent.action_dim, nvec)
                               <= options_of(agent)["max_actions"])


def measurement_seed(seed: int, step: int) -> int:
    """The seed of the measurement at ``step``: a function of (seed, step) alone, so that a
    resumed run measures exactly what an uninterrupted one would."""
    return int(np.random.SeedSequence([0x5EED, int(seed), int(step)]).generate_state(1)[0])


class _OwnRandomness:
    """``fork_rng`` around a block, with torch's generators seeded for it: training's random
    streams are restored on exit whatever the block draws."""

    def __init__(self, seed: int, device: torch.device):
        self.seed, self.device = seed, torch.device(device)

    def __enter__(self):
        cuda = self.device.type == "cuda"
        index = self.device.index if self.device.index is not None else (
            torch.cuda.current_device() if cuda else None)
        self._fork = torch.random.fork_rng(devices=[index] if cuda else [])
        self._fork.__enter__()
        torch.default_generator.manual_seed(self.seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(self.seed)
        return self

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def measure_sac(agent, obs: torch.Tensor, samples: int = 16, num_samples: int = 4,
                reference_samples: int = 256) -> Report:
    """Gradient statistics of every applicable estimator on SAC's actor objective at ``obs``.

    Draws from torch's global generator: call it inside ``_OwnRandomness`` (``Diagnostics``
    does) unless the caller owns the random stream.
    """
    started = time.perf_counter()
    params = list(agent.policy.parameters())
    dist, cost = agent.actor_cost(obs)
    alpha = agent.alpha
    factorized = getattr(agent, "factorized", False)
    exact, options = exact_applies(agent), options_of(agent)
    if exact:
        reference = mean_gradient(dist, cost, Exact(max_actions=options["max_actions"]), params,
                                  alpha)
        reference_name = "exact"
    elif agent.discrete:  # a joint set too large to enumerate: unbiased, not exact
        reference = mean_gradient(dist, cost, Score(num_samples=reference_samples,
                                                    baseline="mean"), params, alpha)
        reference_name = f"score (leave-one-out), {reference_samples} draws per state"
    else:
        reference = mean_gradient(dist, cost, Pathwise(num_samples=reference_samples), params,
                                  alpha)
        reference_name = f"pathwise, {reference_samples} draws per state"
    space = "MultiDiscrete" if factorized else "Discrete" if agent.discrete else "Box"
    report = Report(agent="sac", action_space=space,
                    trained_with=agent.estimator.name, reference=reference_name,
                    states=int(obs.shape[0]), parameters=int(reference.numel()),
                    num_samples=num_samples, seconds=0.0,
                    temperature=float(agent.temperature) if agent.discrete else None,
                    alpha=float(alpha))
    # A Discrete cost is a dot product with q(s): all K copies in one call is fastest. A
    # factorized one is a critic network, as for Box.
    chunk = None if agent.discrete and not factorized else CHUNK_ACTIONS
    chosen = estimators_for(agent.discrete, num_samples, exact, **options)
    for name, estimator in chosen.items():
        noiseless = name == "exact"
        grads = sample_gradients(dist, cost, estimator, params, 1 if noiseless else samples,
                                 alpha, chunk)
        report.estimators.append(gradient_stats(name, grads, reference,
                                                reference_exact=exact,
                                                noiseless=noiseless))
    report.seconds = time.perf_counter() - started
    return report


# -- REINFORCE: one estimate per episode ----------------------------------------------------
def collect_episodes(policy, env_id: str, episodes: int, seed: int, gamma: float,
                     device, num_envs: int = 8, max_steps: int = 200_000, bootstrap=None):
    """At least ``episodes`` fresh episodes of ``policy`` in an env of our own: an
    ``EpisodeBatch`` (returns-to-go G_t), the steps of the completed episodes only, those
    running when the count is reached included (``RolloutStorage.close``: no length bias).
    ``bootstrap``: V(s) for truncated episodes, as the agent trains with (or None)."""
    from pathwise.agents.buffers import RolloutStorage
    from pathwise.envs.make import make_vec_env

    n = max(1, min(num_envs, episodes))
    envs = make_vec_env(env_id, n, seed, device, action_bins=getattr(policy, "action_bins", 0))
    try:
        storage = RolloutStorage(n, envs.obs_dim, envs.action_dim, envs.is_discrete, device,
                                 capacity=256, factorized=envs.action_nvec is not None)
        obs, done_count, steps = envs.reset(seed=seed), 0, 0
        while not storage.ready and steps < max_steps:
            with torch.no_grad():
                dist = policy.distribution(obs)
                if envs.is_discrete:
                    action, u = dist.sample().argmax(-1), None
                else:
                    u = dist.rsample_pre_tanh()
                    action = dist.squash(u)
            step = envs.step(action)
            storage.add(obs, action, step.reward, step.next_obs, step.terminated,
                        step.truncated, u)
            done_count += int((step.terminated | step.truncated).sum())
            obs, steps = step.obs, steps + n
            if done_count >= episodes and not storage.closing:
                storage.close()
        if done_count == 0:
            raise RuntimeError(f"diagnostics: no episode of {env_id} ended in {steps} steps")
        return storage.episodes(gamma, bootstrap)
    finally:
        envs.close()


def measure_reinforce(agent, batch) -> Report:
    """Per-episode REINFORCE estimates on ``batch`` (module doc): ``score`` with the agent's
    baseline (where it has one) and ``score_no_baseline``."""
    started = time.perf_counter()
    params = list(agent.policy.parameters())
    dist = agent.policy.distribution(batch.obs)
    copy, outputs, leaves = detach_parameters(dist)
    if agent.discrete:
        one_hot = torch.nn.functional.one_hot(batch.action, agent.action_dim).to(batch.obs.dtype)
        log_prob = copy.log_prob(one_hot)
    else:
        log_prob = copy.log_prob_pre_tanh(batch.pre_tanh)
    done = batch.done.long()
    episode = torch.cumsum(done, 0) - done  # episode index of every step
    count = int(done.sum())
    member = torch.nn.functional.one_hot(episode, count).T.to(log_prob.dtype)  # (E, T)
    returns = batch.returns
    weights = {"score_no_baseline": returns}
    if agent.config.baseline == "value" and agent.value is not None:
        with torch.no_grad():
            weights["score"] = returns - agent.value(batch.obs).squeeze(-1)
    elif agent.config.baseline == "mean" and count >= 2:
        # Leave-one-out: the mean return of the other episodes' steps, independent of this
        # episode's actions (Kool et al. 2019), so the estimate stays unbiased.
        steps_per = member.sum(1)
        sums = member @ returns
        others = (sums.sum() - sums) / (steps_per.sum() - steps_per)
        weights["score"] = returns - others[episode]
    report = Report(agent="reinforce", action_space="Discrete" if agent.discrete else "Box",
                    trained_with="score", reference="none", states=int(returns.shape[0]),
                    parameters=sum(p.numel() for p in params), num_samples=1, seconds=0.0)
    for name in ("score", "score_no_baseline"):
        if name not in weights:
            continue
        # Per-step ∂(−w_t log π_t)/∂φ_t, summed within each episode (the rows of ``member``),
        # so that episode e's row is its estimate Σ_{t∈e} −w_t ∇θ log π(a_t|s_t).
        cot = torch.autograd.grad(-(weights[name].detach() * log_prob).sum(), leaves,
                                  retain_graph=True)
        batched = tuple(member.view(count, -1, *([1] * (c.dim() - 1))) * c for c in cot)
        grads = flat_grad(outputs, params, grad_outputs=batched, batched=True)
        report.estimators.append(gradient_stats(name, grads))
    report.seconds = time.perf_counter() - started
    return report


# -- the training-time hook -----------------------------------------------------------------
class Diagnostics:
    """Measures an agent every ``config.diagnostics.every`` env steps (``agents.runner``)
    and from checkpoints (``pathwise diagnose``)."""

    def __init__(self, cfg, device: torch.device | str = "cpu"):
        self.cfg, self.settings = cfg, cfg.diagnostics
        self.device = torch.device(device)

    def measure(self, agent, global_step: int, states: torch.Tensor | None = None) -> Report:
        s = self.settings
        if hasattr(agent, "rollout"):  # APG, SHAC: their gradient is through the dynamics
            from pathwise.errors import ConfigError

            raise ConfigError(f"gradient diagnostics apply to agent=sac and agent=reinforce; "
                              f"agent={self.cfg.agent.name}'s gradient through the dynamics is "
                              f"measured by `pathwise lab horizon`")
        seed = measurement_seed(self.cfg.seed, global_step)
        with _OwnRandomness(seed, self.device):
            if hasattr(agent, "actor_cost"):
                if states is None:
                    states = self.states(agent, seed)
                report = measure_sac(agent, states, s.samples, s.num_samples,
                                     s.reference_samples)
            else:
                started = time.perf_counter()
                batch = collect_episodes(agent.policy, self.cfg.env, s.episodes, seed,
                                         agent.config.gamma, self.device,
                                         bootstrap=agent.truncation_bootstrap())
                report = measure_reinforce(agent, batch)
                report.seconds = time.perf_counter() - started
        report.global_step = int(global_step)
        return report

    def states(self, agent, seed: int) -> torch.Tensor:
        """N states from the replay buffer, or from fresh episodes of the policy when it is
        empty (a checkpoint of a run that never stepped)."""
        n = self.settings.batch_size
        if len(agent.buffer) > 0:
            return agent.buffer.sample(n).obs
        batch = collect_episodes(agent.policy, self.cfg.env, 1, seed, 1.0, self.device,
                                 num_envs=1)
        index = torch.randint(0, batch.obs.shape[0], (n,), device=batch.obs.device)
        return batch.obs[index]


# -- from a checkpoint (``pathwise diagnose``) ------------------------------------------------
def diagnose(target, device: torch.device | str = "cpu", seed: int | None = None,
             **settings) -> tuple[Report, dict]:
    """Measure a saved agent: ``(report, context)``. ``settings`` override the run's own
    ``diagnostics`` config (``samples``, ``batch_size``, ``num_samples``,
    ``reference_samples``, ``episodes``); ``seed`` defaults to the run's, so that at a step
    where training measured, the numbers are the ones it logged."""
    import dataclasses

    from pathwise.training.checkpoint import load_agent

    cfg, agent, step, path = load_agent(target, device)
    cfg.diagnostics = dataclasses.replace(
        cfg.diagnostics, **{k: v for k, v in settings.items() if v is not None})
    problems = cfg.diagnostics.validate()
    if problems:
        from pathwise.errors import ConfigError

        raise ConfigError(problems[0])
    if seed is not None:
        cfg.seed = int(seed)
    report = Diagnostics(cfg, device).measure(agent, step)
    context = {"checkpoint": str(path), "env": cfg.env, "agent": cfg.agent.name,
               "estimator": cfg.estimator.name, "seed": cfg.seed}
    return report, context
