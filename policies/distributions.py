"""Reparameterizable action distributions: a tanh-squashed Gaussian and a Gumbel-softmax.

Both follow ``torch.distributions`` conventions (batch/event shapes, ``rsample``/``sample``,
``log_prob``) and add the pair the estimators switch on:

* ``rsample_and_log_prob()``: a differentiable draw and its log-density (pathwise gradient);
* ``sample_and_log_prob()``: a draw with no gradient and a log-density that does carry one
  (score-function gradient).

Neither object keeps state between calls: every method is a pure function of its parameters
and of the random numbers it draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

_LOG2 = math.log(2.0)
# Default sample_shape (torch.Size is an immutable tuple, so one shared instance is safe).
_SCALAR_SHAPE = torch.Size()


def bound_log_std(raw: torch.Tensor, log_std_min: float = -5.0, log_std_max: float = 2.0):
    """Map an unbounded network output to ``[log_std_min, log_std_max]`` smoothly.

    Uses ``min + (max - min) * (tanh(raw) + 1) / 2`` rather than ``clamp``: a clamp has zero
    gradient outside the range, so a log-std that drifts past a bound can never come back,
    while the tanh form keeps a (small) gradient everywhere. The range [-5, 2] keeps σ in
    [0.0067, 7.4]: wide enough for exploration on [-1, 1] actions, narrow enough that the
    Gaussian log-density never under- or overflows in float32.
    """
    return log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(raw) + 1.0)


def log1m_tanh_sq(u: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)`` computed without cancellation.

    Exact identity ``log(1 - tanh²u) = 2·(log 2 − u − softplus(−2u))`` (Haarnoja et al. 2018,
    SAC, appendix C, eq. 21, in stable form). The naive ``log(1 - tanh(u)**2)`` is ``-inf`` in
    float32 once ``|u| >= 9.01`` because ``tanh(u)`` rounds to exactly 1; the ``+1e-6``
    patch common in the field caps the term at 13.8 nats, wrong by 4.8 nats at u = 10.
    """
    return 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))


def _validating(validate_args: bool | None) -> bool:
    return Distribution._validate_args if validate_args is None else bool(validate_args)


class TanhNormal(Distribution):
    """``a = low + (high - low) · (tanh(u) + 1) / 2`` with ``u ~ Normal(loc, scale)``.

    The last ``event_dims`` dimensions of ``loc`` form one action (default 1: a vector action
    whose log-density sums over its coordinates, as in SAC); use ``event_dims=0`` for a
    scalar-per-element law.

    Log-density by change of variables, scored on the pre-tanh draw ``u``:
        log π(a) = log N(u; loc, scale) − Σ log(1 − tanh²u) − Σ log((high − low) / 2).
    ``rsample_and_log_prob``/``sample_and_log_prob`` never recover ``u`` from ``a`` with
    ``atanh``: at saturation ``tanh(u) == 1`` in floating point and the inverse is infinite.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        event_dims: int = 1,
        validate_args: bool | None = None,
    ):
        if not (isinstance(loc, torch.Tensor) and isinstance(scale, torch.Tensor)
                and loc.shape == scale.shape):
            loc, scale = broadcast_all(loc, scale)
        if event_dims not in (0, 1):
            raise ValueError(f"TanhNormal: event_dims must be 0 or 1, got {event_dims}")
        if event_dims > loc.dim():
            raise ValueError(
                f"TanhNormal: event_dims={event_dims} needs loc with at least {event_dims} "
                f"dimension(s), got shape {tuple(loc.shape)}"
            )
        # Bounds given as numbers stay Python floats: no tensors to build per distribution
        # (the policy makes one per forward pass), and the default (−1, 1) map is tanh itself.
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            low, high = float(low), float(high)
        else:
            low = torch.as_tensor(low, dtype=loc.dtype, device=loc.device)
            high = torch.as_tensor(high, dtype=loc.dtype, device=loc.device)
        # Value checks read the tensors back to the host (a CUDA sync), so like torch's own
        # they run only when argument validation is on; agents turn it off in the hot loop.
        if _validating(validate_args):
            if not torch.all(scale > 0):
                raise ValueError("TanhNormal: scale must be positive everywhere")
            if not torch.all(torch.as_tensor(high > low)):
                raise ValueError("TanhNormal: every high bound must exceed its low bound")
        self.loc, self.scale = loc, scale
        self.low, self.high = low, high
        # Affine map from tanh's (-1, 1) to (low, high): a = half_range · tanh(u) + center.
        self._half_range = (high - low) / 2.0
        self._center = (high + low) / 2.0
        self._unit = isinstance(low, float) and (low, high) == (-1.0, 1.0)
        self._event_dims = event_dims
        shape = loc.shape
        split = len(shape) - event_dims
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    # -- construction helpers ------------------------------------------------------------
    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.event_shape
        return TanhNormal(
            self.loc.expand(shape), self.scale.expand(shape), self.low, self.high,
            self._event_dims, validate_args=False,
        )

    @constraints.dependent_property
    def support(self):
        return constraints.independent(
            constraints.interval(self.low, self.high), self._event_dims
        )

    # -- the pre-tanh variable -----------------------------------------------------------
    def rsample_pre_tanh(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        """``u = loc + scale · ε`` with ``ε ~ N(0, I)``: differentiable in loc and scale."""
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """The action for a pre-tanh value ``u``.

        The clamp only removes the one-ulp overshoot of ``half_range · tanh(u) + center`` past
        a custom bound at saturation (``tanh(u) == ±1``), which would put the sample outside
        the support; it passes the gradient unchanged everywhere inside ``[low, high]``.
        """
        if self._unit:  # tanh(u) lies in [−1, 1] exactly: nothing to map or clamp
            return torch.tanh(u)
        a = self._half_range * torch.tanh(u) + self._center
        return torch.clamp(a, self.low, self.high)

    def log_prob_pre_tanh(self, u: torch.Tensor) -> torch.Tensor:
        """log π(squash(u)) for a known pre-tanh value ``u`` (stable at saturation).

        This is how REINFORCE scores a stored action: it keeps ``u`` next to ``a``.
        """
        var = self.scale**2
        log_normal = (
            -((u - self.loc) ** 2) / (2 * var) - self.scale.log() - 0.5 * math.log(2 * math.pi)
        )
        per_dim = log_normal - log1m_tanh_sq(u)
        if not self._unit:  # the affine map's log-Jacobian; log 1 = 0 on [−1, 1]
            per_dim = per_dim - (math.log(self._half_range) if isinstance(self._half_range, float)
                                 else torch.log(self._half_range))
        return self._sum_event(per_dim)

    def _sum_event(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(-1) if self._event_dims == 1 else x

    # -- torch.distributions API ---------------------------------------------------------
    def rsample(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        return self.squash(self.rsample_pre_tanh(sample_shape))

    def sample(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape=_SCALAR_SHAPE):
        """``(a, log π(a))`` with gradients through both (pathwise)."""
        u = self.rsample_pre_tanh(sample_shape)
        return self.squash(u), self.log_prob_pre_tanh(u)

    def sample_and_log_prob(self, sample_shape=_SCALAR_SHAPE):
        """``(a, log π(a))``: no gradient through ``a``; ``log π`` is differentiable in the
        parameters at the fixed draw (score function)."""
        u = self.rsample_pre_tanh(sample_shape).detach()
        return self.squash(u), self.log_prob_pre_tanh(u)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log π(a) for an externally given action.

        This inverts tanh: ``u = atanh((a − center) / half_range)``. It is accurate away from
        saturation only; an action at (or rounded to) a bound maps to a clipped ``u`` and a
        wrong density. Where you drew the action yourself, keep ``u`` and call
        ``log_prob_pre_tanh(u)``, or use ``rsample_and_log_prob``/``sample_and_log_prob``.
        """
        if self._validate_args:
            self._validate_sample(value)
        y = (value - self._center) / self._half_range
        eps = torch.finfo(y.dtype).eps
        u = torch.atanh(y.clamp(-1 + eps, 1 - eps))
        return self.log_prob_pre_tanh(u)

    @property
    def mode(self) -> torch.Tensor:
        """The deterministic action ``squash(loc)`` (the image of the Gaussian's mode).

        Strictly, the density's mode in ``a`` can differ; ``squash(loc)`` is the action SAC
        evaluates with, and the median of the law.
        """
        return self.squash(self.loc)

    @property
    def deterministic_action(self) -> torch.Tensor:
        return self.mode

    def entropy(self):
        raise NotImplementedError(
            "TanhNormal has no closed-form entropy; estimate −E[log π(a)] with "
            "rsample_and_log_prob()"
        )


class GumbelSoftmax(Distribution):
    """Categorical policy over one-hot actions with a Gumbel-softmax (Concrete) ``rsample``.

    * ``rsample``: ``y = softmax((logits + g) / τ)``, ``g_i ~ Gumbel(0, 1)`` i.i.d. (Jang et al.
      2017, eq. 1; Maddison et al. 2017). With ``hard=True`` the straight-through sample
      ``y_hard − stop_grad(y) + y``: exactly one-hot forward, the relaxed gradient backward.
      Both gradients are biased for the categorical objective.
    * ``sample``: the exact one-hot draw ``one_hot(argmax(logits + g))`` (Gumbel-max trick),
      no gradient.
    * ``log_prob`` / ``entropy`` / ``probs`` / ``enumerate_support``: the categorical law.
      ``log_prob`` of a relaxed (non one-hot) vector is ``Σ y_i log p_i``, the linear
      extension, not the Concrete density.
    """

    arg_constraints = {"logits": constraints.real_vector}
    has_rsample = True
    has_enumerate_support = True

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        temperature: float | torch.Tensor = 1.0,
        hard: bool = False,
        probs: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ):
        if (logits is None) == (probs is None):
            raise ValueError("GumbelSoftmax: pass exactly one of logits or probs")
        if logits is None:
            logits = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        if logits.dim() < 1:
            raise ValueError("GumbelSoftmax: logits need a last dimension over the categories")
        if isinstance(temperature, (int, float)):
            # A number stays a number: no tensor to build (on a GPU, a host-to-device copy).
            if not temperature > 0:
                raise ValueError(f"GumbelSoftmax: temperature must be > 0, got {temperature}")
            temperature = float(temperature)
        else:
            if _validating(validate_args) and not torch.all(torch.as_tensor(temperature) > 0):
                raise ValueError(f"GumbelSoftmax: temperature must be > 0, got {temperature}")
            temperature = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        # Normalised logits: log-probabilities, so that log_prob needs no logsumexp.
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.temperature = temperature
        self.hard = bool(hard)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return GumbelSoftmax(
            self.logits.expand(batch_shape + self.event_shape), self.temperature, self.hard,
            validate_args=False,
        )

    support = constraints.simplex

    @property
    def num_categories(self) -> int:
        return self.logits.shape[-1]

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    def _gumbel(self, sample_shape) -> torch.Tensor:
        # g = −log E with E ~ Exp(1) is Gumbel(0, 1); exponential_() never returns 0 so the
        # log is finite, unlike −log(−log U) with U possibly 0 or 1.
        shape = self._extended_shape(sample_shape)
        return -torch.empty(shape, dtype=self.logits.dtype, device=self.logits.device) \
            .exponential_().log()

    def _one_hot(self, index: torch.Tensor) -> torch.Tensor:
        return F.one_hot(index, self.num_categories).to(self.logits.dtype)

    def relaxed_sample(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        """The soft Concrete sample ``softmax((logits + g)/τ)``, whatever ``hard`` says."""
        return torch.softmax((self.logits + self._gumbel(sample_shape)) / self.temperature, -1)

    def perturbed_logits_given(self, one_hot: torch.Tensor,
                               sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        """Draws of ``z = logits + g`` (g_i ~ Gumbel(0, 1) i.i.d.) conditioned on
        ``argmax z`` being the category of ``one_hot``; shape ``sample_shape + one_hot.shape``,
        no gradient. ``one_hot`` may carry leading sample dimensions of its own.

        Top-down, as in the Gumbel process of Maddison, Tarlow, Minka (2014, "A* Sampling")
        and the Gumbel-Rao estimator of Paulus, Maddison, Krause (2021): the maximum of the
        z_i is Gumbel(logsumexp logits), independent of which i attains it, and given the
        maximum M every other z_i is Gumbel(logits_i) truncated to z_i < M
        (docs/estimator-facts.md §9).
        """
        with torch.no_grad():
            shape = torch.Size(sample_shape) + one_hot.shape
            dtype, device = self.logits.dtype, self.logits.device
            exponential = torch.empty(shape, dtype=dtype, device=device).exponential_()
            top_exponential = torch.empty(shape[:-1] + (1,), dtype=dtype,
                                          device=device).exponential_()
            top = self.logits.logsumexp(-1, keepdim=True) - top_exponential.log()
            # Gumbel(θ_i) below M: −log(e^{−M} + e^{−θ_i}·E_i), E_i ~ Exp(1); its CDF is the
            # Gumbel's, F(z)/F(M) for z < M.
            below = -torch.logaddexp(-top, exponential.log() - self.logits)
            return torch.where(one_hot > 0, top, below)

    def rsample(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        y = self.relaxed_sample(sample_shape)
        if not self.hard:
            return y
        y_hard = self._one_hot(y.argmax(-1))
        return y_hard - y.detach() + y

    def sample(self, sample_shape=_SCALAR_SHAPE) -> torch.Tensor:
        with torch.no_grad():
            return self._one_hot((self.logits + self._gumbel(sample_shape)).argmax(-1))

    def rsample_and_log_prob(self, sample_shape=_SCALAR_SHAPE):
        y = self.rsample(sample_shape)
        return y, self.log_prob(y)

    def sample_and_log_prob(self, sample_shape=_SCALAR_SHAPE):
        y = self.sample(sample_shape)
        return y, self.log_prob(y)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (value * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return self._one_hot(self.logits.argmax(-1))

    @property
    def deterministic_action(self) -> torch.Tensor:
        return self.mode

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        k = self.num_categories
        eye = torch.eye(k, dtype=self.logits.dtype, device=self.logits.device)
        values = eye.view((k,) + (1,) * len(self.batch_shape) + (k,))
        if expand:
            values = values.expand((k,) + self.batch_shape + (k,))
        return values
