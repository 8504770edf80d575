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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.distributions import Distribution

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

    Calls ``cost`` once with every action stacked along a leading dimension of size K.
    """

    name: str = "exact"

    def __call__(self, dist: Distribution, cost: Cost, alpha=0.0) -> torch.Tensor:
        if not getattr(dist, "has_enumerate_support", False):
            raise ValueError(
                f"exact estimator needs a distribution with finite support "
                f"(has_enumerate_support); {type(dist).__name__} is continuous. "
                f"Use 'pathwise' or 'score'."
            )
        _check_alpha(alpha)
        support = dist.enumerate_support(expand=True)  # (K, *batch, *event)
        weights = dist.log_prob(support).exp()  # (K, *batch)
        surrogate = (weights * cost(support)).sum(0)
        if _uses(alpha):
            entropy = analytic_entropy(dist)
            if entropy is None:
                entropy = -(weights * weights.clamp_min(1e-30).log()).sum(0)
            surrogate = surrogate - alpha * entropy
        return surrogate


ESTIMATORS = {"pathwise": Pathwise, "score": Score, "exact": Exact}


def get_estimator(name: str, **options):
    """The estimator called ``name`` (``pathwise``, ``score`` or ``exact``) with options."""
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
