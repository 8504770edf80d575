"""Gradient estimators: the one seam between a policy's distribution and what it learns.

An estimator turns ``(dist, cost)`` into a per-element *surrogate* whose gradient is an
estimate of ∇ E_{a ~ dist}[cost(a) + α · log dist(a)]:

    surrogate = estimator(dist, cost, alpha=0.0)      # shape dist.batch_shape
    surrogate.mean().backward()

``cost(actions)`` receives actions shaped ``sample_shape + batch_shape + event_shape`` and
returns ``sample_shape + batch_shape``. ``alpha`` weighs the log-density term of the
maximum-entropy objective (SAC). Where the distribution has a closed-form entropy
(categorical, Gaussian) that term is computed exactly, −α·H, by every estimator alike, so
estimators differ only in how they treat ``cost``; otherwise (tanh-Gaussian) each estimator
scores ``log dist(a)`` on the same draws as the cost.

The surrogate's *value* is always an estimate of the objective itself, so a logged loss means
the same thing whichever estimator produced it.

Math (Mohamed, Rosca, Figurnov, Mnih 2020, "Monte Carlo Gradient Estimation in ML", JMLR):
  pathwise (§5):  a = g_θ(ε)  ⇒  ∇θ E[f(a)] = E_ε[∇a f(a) · ∇θ g_θ(ε)]
  score    (§4):  ∇θ E[f(a)] = E_a[(f(a) − b) ∇θ log π_θ(a)],  b independent of a
  exact:          ∇θ Σ_a π_θ(a) f(a), differentiated directly (finite action sets)

Discrete actions (``GumbelSoftmax``, one-hot actions, temperature τ from the distribution).
Besides ``score`` and ``exact`` (unbiased) and ``pathwise`` (Gumbel-softmax; straight-through
Gumbel when the distribution has ``hard=True``), three estimators feed the cost the exact
one-hot sample D (whatever the distribution's ``hard`` flag) and differ only in the gradient
they send back through it:

  straight_through  ∂softmax(θ/τ)/∂θ              (Bengio, Léonard, Courville 2013)
  gumbel_rao        E[∂softmax((θ + G)/τ)/∂θ | argmax(θ + G) = D], by ``mc_samples`` draws
                    (Paulus, Maddison, Krause 2021)
  reinmax           2·∂π₁/∂θ − ½·∂π₀/∂θ, π₁ = (D + softmax(θ/τ))/2 (Liu et al. 2023, Alg. 2)

All three are biased in general (straight-through is exact at τ = 1 on linear costs, ReinMax
at τ = 1 on quadratic ones; docs/estimator-facts.md §7–§10 give their means in closed form);
they exist because they scale where ``exact`` cannot.

Factorized (multi-discrete) actions. k independent categoricals whose *joint* action the
cost scores are one distribution with the factor dimension moved into the event:
``Independent(GumbelSoftmax(logits), 1)`` with ``logits`` of shape (B, k, n) has batch shape
(B,) and event shape (k, n), its ``log_prob`` and ``entropy`` sum over the factors, and the
cost maps (..., B, k, n) → (..., B). Every estimator here accepts it: ``pathwise`` and
``score`` through the ``Independent`` API, the straight-through family factor by factor (each
factor's gradient is that of the joint cost with respect to its own one-hot), and ``exact``
by enumerating the product set, Π n_j joint actions, refused above ``max_actions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.distributions import Distribution, Independent

from pathwise.policies.distributions import GumbelSoftmax

Cost = Callable[[torch.Tensor], torch.Tensor]

BASELINES = ("none", "mean")


def analytic_entropy(dist: Distribution) -> torch.Tensor | None:
    """The distribution's closed-form entropy, or ``None`` when it has none."""
    try:
        return dist.entropy()
    except NotImplementedError:
        return None


def _check_alpha(alpha):
    if isinstance(alpha, torch.Tensor) and alpha.requires_grad:
        raise ValueError("estimator: alpha must not require grad; pass alpha.detach()")


@dataclass(frozen=True)
class Pathwise:
    """Reparameterization gradient: differentiate the cost through ``rsample``."""

    num_samples: int = 1
    name: str = "pathwise"

    def __post_init__(self):
        _check_num_samples(self.num_samples)

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        if not dist.has_rsample:
            raise ValueError(
                f"pathwise estimator needs a reparameterizable distribution (has_rsample); "
                f"{type(dist).__name__} has none. Use 'score' (or 'exact' if discrete)."
            )
        _check_alpha(alpha)
        shape = torch.Size((self.num_samples,))
        entropy = analytic_entropy(dist) if _uses(alpha) else None
        if _uses(alpha) and entropy is None:
            actions, log_prob = _rsample_and_log_prob(dist, shape)
            objective = cost(actions) + alpha * log_prob
        else:
            objective = cost(dist.rsample(shape))
        surrogate = objective.mean(0)
        if entropy is not None:
            surrogate = surrogate - alpha * entropy
        return surrogate


@dataclass(frozen=True)
class Score:
    """Likelihood-ratio (REINFORCE) gradient: no gradient flows through the action.

    ``baseline="mean"`` subtracts, for each draw, the mean cost of the *other*
    ``num_samples − 1`` draws of the same element (leave-one-out; Kool, van Hoof, Welling
    2019, "Buy 4 REINFORCE samples, get a baseline for free"). Being independent of the draw
    it multiplies, it keeps the estimator unbiased.
    """

    num_samples: int = 1
    baseline: str = "none"
    name: str = "score"

    def __post_init__(self):
        _check_num_samples(self.num_samples)
        if self.baseline not in BASELINES:
            raise ValueError(
                f"score estimator: unknown baseline {self.baseline!r}; valid: {list(BASELINES)}"
            )
        if self.baseline == "mean" and self.num_samples < 2:
            raise ValueError(
                "score estimator: baseline='mean' (leave-one-out) needs num_samples >= 2"
            )

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        _check_alpha(alpha)
        shape = torch.Size((self.num_samples,))
        if hasattr(dist, "sample_and_log_prob"):
            actions, log_prob = dist.sample_and_log_prob(shape)
        else:
            actions = dist.sample(shape)
            log_prob = dist.log_prob(actions)
        entropy = analytic_entropy(dist) if _uses(alpha) else None
        # ``f`` keeps any direct dependence of the cost on θ (its ordinary gradient is part of
        # the estimate); the likelihood-ratio term carries the dependence through π_θ.
        f = cost(actions)
        if _uses(alpha) and entropy is None:
            # E[log π] by the score function: E[log π ∇log π] (+ E[∇log π] = 0, dropped).
            f = f + alpha * log_prob.detach()
        weight = f.detach()
        if self.baseline == "mean":
            n = self.num_samples
            weight = weight - (weight.sum(0, keepdim=True) - weight) / (n - 1)
        # DiCE-style surrogate: value f, gradient ∇f + (f − b)·∇log π.
        surrogate = (f + weight * (log_prob - log_prob.detach())).mean(0)
        if entropy is not None:
            surrogate = surrogate - alpha * entropy
        return surrogate


@dataclass(frozen=True)
class Exact:
    """All-action expectation Σ_a π(a)·cost(a) for distributions with a finite support.

    Calls ``cost`` once with every action stacked along a leading dimension of size A. An
    ``Independent`` over a finite distribution (k factors of n categories, module doc) is
    enumerated as its product set, A = Π n_j joint actions; above ``max_actions`` actions the
    estimator refuses (memory and the cost's work grow like A).
    """

    max_actions: int = 4096
    name: str = "exact"

    def __post_init__(self):
        if not isinstance(self.max_actions, int) or self.max_actions < 1:
            raise ValueError(f"exact estimator: max_actions must be a positive integer, got "
                             f"{self.max_actions!r}")

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        _check_alpha(alpha)
        support = enumerate_actions(dist, self.max_actions)  # (A, *batch, *event)
        weights = dist.log_prob(support).exp()  # (A, *batch)
        surrogate = (weights * cost(support)).sum(0)
        if _uses(alpha):
            entropy = analytic_entropy(dist)
            if entropy is None:
                entropy = -(weights * weights.clamp_min(1e-30).log()).sum(0)
            surrogate = surrogate - alpha * entropy
        return surrogate


def enumerate_actions(dist: Distribution, max_actions: int = 4096) -> torch.Tensor:
    """Every action of a finite distribution, stacked first: (A, *batch, *event).

    For ``Independent(base, r)`` over a finite ``base`` (torch refuses to enumerate a
    Cartesian product), the product set: the last r batch dimensions of ``base`` hold F
    factors of n values each, and every one of the A = n^F combinations is one joint action.
    Factors of unequal sizes padded to n (``policies.policy``) say so with a
    ``factor_sizes`` attribute (n_1, …, n_F) on the ``Independent``: then only the
    A = Π n_j real joint actions are enumerated, never a padded value (probability 0).
    More than ``max_actions`` actions raise a ValueError.
    """
    if getattr(dist, "has_enumerate_support", False):
        support = dist.enumerate_support(expand=True)
        _check_action_count(support.shape[0], "", max_actions)
        return support
    base = dist.base_dist if isinstance(dist, Independent) else None
    if base is None or not getattr(base, "has_enumerate_support", False):
        what = type(dist).__name__ + (f"({type(base).__name__})" if base is not None else "")
        raise ValueError(
            f"exact estimator needs a distribution with finite support "
            f"(has_enumerate_support, or an Independent of one); {what} has none. "
            f"Use 'pathwise' or 'score'."
        )
    split = len(base.batch_shape) - dist.reinterpreted_batch_ndims
    outer, factors = base.batch_shape[:split], base.batch_shape[split:]
    values = base.enumerate_support(expand=False)  # (n, 1, ..., 1, *event)
    n = values.shape[0]
    values = values.reshape((n,) + base.event_shape)
    count = factors.numel()
    sizes = tuple(int(m) for m in getattr(dist, "factor_sizes", None) or (n,) * count)
    if len(sizes) != count or not all(1 <= m <= n for m in sizes):
        raise ValueError(f"enumerate_actions: factor_sizes {list(sizes)} do not fit {count} "
                         f"factors of at most {n} values")
    detail = (f" ({n}^{count}: {count} factors of {n} values)" if set(sizes) == {n}
              else f" ({'·'.join(map(str, sizes))}: {count} factors)")
    _check_action_count(math.prod(sizes), detail, max_actions)
    # Row a of ``index`` is joint action a: the value index of each factor (a in mixed radix).
    grids = torch.meshgrid(*[torch.arange(m, device=values.device) for m in sizes],
                           indexing="ij")
    index = torch.stack(grids, -1).reshape(-1, count)  # (A, F)
    joint = values[index].reshape((-1,) + factors + base.event_shape)
    joint = joint.view((joint.shape[0],) + (1,) * len(outer) + joint.shape[1:])
    return joint.expand((joint.shape[0],) + outer + joint.shape[1 + len(outer):])


def _check_action_count(count: int, detail: str, max_actions: int):
    if count > max_actions:
        raise ValueError(
            f"exact estimator: {count} actions{detail} exceed max_actions={max_actions}; "
            f"raise max_actions or use a sampling estimator (score, reinmax, gumbel_rao)"
        )


# -- straight-through family: the cost sees the one-hot sample D, the gradient a surrogate ------
def _gumbel_softmax_of(dist: Distribution, who: str) -> GumbelSoftmax:
    """The ``GumbelSoftmax`` under ``dist`` (itself, or the base of ``Independent``s)."""
    base = dist
    while isinstance(base, Independent):
        base = base.base_dist
    if not isinstance(base, GumbelSoftmax):
        raise ValueError(
            f"{who} estimator needs a GumbelSoftmax (or an Independent of one) for its "
            f"temperature and logits; got {type(dist).__name__}"
        )
    return base


def _straight_through(one_hot: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """Value ``one_hot``, gradient that of ``backward`` (broadcast against it)."""
    return one_hot + (backward - backward.detach())


def _finish(objective: torch.Tensor, dist: Distribution, alpha) -> torch.Tensor:
    """Average the draws; add the exact −α·H (a GumbelSoftmax always has its entropy)."""
    surrogate = objective.mean(0)
    if _uses(alpha):
        surrogate = surrogate - alpha * dist.entropy()
    return surrogate


@dataclass(frozen=True)
class StraightThrough:
    """Straight-through (Bengio, Léonard, Courville 2013, "Estimating or Propagating Gradients
    Through Stochastic Neurons"): forward the sampled one-hot D, backward the Jacobian of
    softmax(θ/τ), with no noise in it (unlike straight-through Gumbel).

    Per draw the estimate is J_τᵀ ∇f(D), J_τ = ∂softmax(θ/τ)/∂θ: on a linear cost it is the
    same for every D (zero variance), and exact at τ = 1 (docs/estimator-facts.md §7).
    """

    num_samples: int = 1
    name: str = "straight_through"

    def __post_init__(self):
        _check_num_samples(self.num_samples)

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        _check_alpha(alpha)
        base = _gumbel_softmax_of(dist, self.name)
        one_hot = base.sample((self.num_samples,))
        soft = torch.softmax(base.logits / base.temperature, -1)
        return _finish(cost(_straight_through(one_hot, soft)), dist, alpha)


@dataclass(frozen=True)
class GumbelRao:
    """Gumbel-Rao (Paulus, Maddison, Krause 2021, "Rao-Blackwellizing the Straight-Through
    Gumbel-Softmax Gradient Estimator"): straight-through Gumbel with its backward pass
    averaged over the Gumbel noise *given* the forward sample D,

        ∇f(D)ᵀ E[∂softmax((θ + G)/τ)/∂θ | argmax(θ + G) = D],

    by ``mc_samples`` conditional draws (``GumbelSoftmax.perturbed_logits_given``). Same mean
    as straight-through Gumbel, variance no larger (Rao-Blackwell; docs/estimator-facts.md §9).
    """

    num_samples: int = 1
    mc_samples: int = 10
    name: str = "gumbel_rao"

    def __post_init__(self):
        _check_num_samples(self.num_samples)
        if not isinstance(self.mc_samples, int) or self.mc_samples < 1:
            raise ValueError(f"gumbel_rao estimator: mc_samples must be a positive integer, "
                             f"got {self.mc_samples!r}")

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        _check_alpha(alpha)
        base = _gumbel_softmax_of(dist, self.name)
        one_hot = base.sample((self.num_samples,))
        perturbed = base.perturbed_logits_given(one_hot, (self.mc_samples,))
        # θ + G with G held fixed: the noise is a constant, the logits carry the gradient.
        noise = perturbed - base.logits.detach()
        soft = torch.softmax((base.logits + noise) / base.temperature, -1).mean(0)
        return _finish(cost(_straight_through(one_hot, soft)), dist, alpha)


@dataclass(frozen=True)
class ReinMax:
    """ReinMax (Liu, Liu, Gao, Chen 2023, "Bridging Discrete and Backpropagation:
    Straight-Through and Beyond", Algorithm 2): forward D ~ softmax(θ), backward Heun's
    second-order rule in place of straight-through's first-order (Euler) one.

    Exact in expectation at τ = 1 on every cost that is quadratic in each factor's one-hot,
    biased otherwise and at τ ≠ 1; the paper recommends τ ≥ 1 (docs/estimator-facts.md §10).
    """

    num_samples: int = 1
    name: str = "reinmax"

    def __post_init__(self):
        _check_num_samples(self.num_samples)

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        _check_alpha(alpha)
        base = _gumbel_softmax_of(dist, self.name)
        theta = base.logits
        pi0 = base.probs  # Alg. 2 line 1: π₀ = softmax(θ)
        one_hot = base.sample((self.num_samples,))  # line 2: D ~ π₀
        # Line 3: π₁ = (D + softmax(θ/τ))/2, a value only: line 4 cuts its gradient.
        pi1 = (one_hot + torch.softmax(theta.detach() / base.temperature, -1)) / 2
        # Line 4: value π₁, Jacobian diag(π₁) − π₁π₁ᵀ (the softmax Jacobian taken at π₁).
        pi1 = torch.softmax((pi1.log() - theta).detach() + theta, -1)
        pi2 = 2 * pi1 - pi0 / 2  # line 5
        return _finish(cost(_straight_through(one_hot, pi2)), dist, alpha)  # line 6


ESTIMATORS = {"pathwise": Pathwise, "score": Score, "exact": Exact,
              "straight_through": StraightThrough, "gumbel_rao": GumbelRao, "reinmax": ReinMax}


def get_estimator(name: str, **options):
    """The estimator called ``name`` (a key of ``ESTIMATORS``) with its options (the
    dataclass fields, e.g. ``num_samples``, ``baseline``, ``mc_samples``, ``max_actions``)."""
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        raise ValueError(
            f"unknown estimator {name!r}; valid: {', '.join(ESTIMATORS)}"
        ) from None
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"estimator {name!r}: bad options {options}: {err}") from None


def _uses(alpha) -> bool:
    return isinstance(alpha, torch.Tensor) or alpha != 0


def _check_num_samples(n):
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"estimator: num_samples must be a positive integer, got {n!r}")


def _rsample_and_log_prob(dist: Distribution, shape):
    if hasattr(dist, "rsample_and_log_prob"):
        return dist.rsample_and_log_prob(shape)
    actions = dist.rsample(shape)
    return actions, dist.log_prob(actions)
