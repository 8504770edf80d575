"""One-step bandits whose policy gradient is known in closed form, registered with Gymnasium.

They are where the estimators (pathwise, score, exact; on the discrete bandit also
straight_through, gumbel_rao, reinmax) can be checked against the truth: the
observation is always 0, every episode is one step, and the expected reward of a simple policy
is a formula.

`pathwise/ContinuousBandit-v0` (kwargs `dim=1`, `target=0.5`): action a ∈ [-1, 1]^dim,
reward r(a) = −Σ_j (a_j − k_j)². For an unsquashed Gaussian policy a ~ N(μ, diag σ²),
E[(a − k)²] = (μ − k)² + σ² per dim (mean-squared error = bias² + variance), so

    E[r] = −Σ_j ((μ_j − k_j)² + σ_j²),   ∂E[r]/∂μ = −2(μ − k),   ∂E[r]/∂σ = −2σ,

and the optimum is a* = k (with σ → 0). Actions are not clipped, so the formula holds for
Gaussian draws that leave the box too.

`pathwise/DiscreteBandit-v0` (kwarg `rewards=(0.0, 0.5, 1.0)`): action a ∈ {0..n−1}, reward
r_a. For a softmax policy π = softmax(l), E[r] = π·r and

    ∂E[r]/∂l = π ⊙ (r − π·r)

(Sutton & Barto 2018, §2.8, the gradient-bandit derivation). The optimum is argmax r; the
optimum of the entropy-regularised objective π·r + α·H(π), the one-step case of soft /
maximum-entropy RL (Haarnoja et al. 2017, "Reinforcement Learning with Deep Energy-Based
Policies", eq. 2-3), is π* = softmax(r / α).

`pathwise/MultiDiscreteBandit-v0` (kwargs `nvec=(3, 5)`, `targets=(2, 4)`, `start`, or
`binary=True` for MultiBinary): k sub-actions at once, sub-action j paying 1 when it equals
`targets[j]`. Under a factorized softmax policy π_j = softmax(l_j) the sub-actions are
independent, so E[r] = Σ_j π_j(k_j) and

    ∂E[r]/∂l_j = π_j(k_j) · (e_{k_j} − π_j),

the discrete bandit's formula for each factor with rewards e_{k_j}. Its joint set has Π n_j
actions: the factorized estimators (exact over the product set, the straight-through family
factor by factor) are checked against it.

The helper functions accept numpy arrays (or floats) and torch tensors alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

__all__ = [
    "CONTINUOUS_BANDIT_ID",
    "DISCRETE_BANDIT_ID",
    "ContinuousBandit",
    "DiscreteBandit",
    "MULTI_DISCRETE_BANDIT_ID",
    "MultiDiscreteBandit",
    "factorized_expected_reward",
    "factorized_policy_gradient",
    "gaussian_expected_reward",
    "gaussian_policy_gradient",
    "optimal_action",
    "soft_optimal_policy",
    "softmax_expected_reward",
    "softmax_policy_gradient",
]

CONTINUOUS_BANDIT_ID = "pathwise/ContinuousBandit-v0"
DISCRETE_BANDIT_ID = "pathwise/DiscreteBandit-v0"
MULTI_DISCRETE_BANDIT_ID = "pathwise/MultiDiscreteBandit-v0"


def _zero_observation() -> np.ndarray:
    # A fresh array each call: Gymnasium's checker rejects envs that hand out shared buffers.
    return np.zeros(1, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Continuous bandit
# --------------------------------------------------------------------------------------------


class ContinuousBandit(gym.Env):
    """One step; reward −Σ(a − target)² for an action a in [-1, 1]^dim."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        dim: int = 1,
        target: float | Sequence[float] = 0.5,
        render_mode: str | None = None,
    ):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        try:
            target_array = np.broadcast_to(np.asarray(target, dtype=np.float64), (dim,)).copy()
        except ValueError as err:
            raise ValueError(f"target must be a float or {dim} floats, got {target!r}") from err
        if np.any(np.abs(target_array) > 1.0):
            # Outside the box the env's optimum would be the clipped target, not the target.
            raise ValueError(f"target must lie in the action box [-1, 1], got {target!r}")
        self.dim = dim
        self.target = target_array
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return _zero_observation(), {}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(self.dim)
        reward = -float(np.sum((action - self.target) ** 2))
        return _zero_observation(), reward, True, False, {}


def gaussian_expected_reward(mu, sigma, target):
    """E[r] = −Σ((μ − k)² + σ²) under a ~ N(μ, diag σ²), summed over the last axis."""
    per_dim = (mu - target) ** 2 + sigma**2
    return -per_dim.sum(-1) if isinstance(per_dim, torch.Tensor) else -np.sum(per_dim, axis=-1)


def gaussian_policy_gradient(mu, sigma, target):
    """(∂E[r]/∂μ, ∂E[r]/∂σ) = (−2(μ − k), −2σ) for a ~ N(μ, diag σ²), one entry per dim.

    σ is a per-dim standard deviation, broadcast against μ; a σ shared by all dims has the
    sum of the per-dim entries as its gradient.
    """
    if isinstance(mu, torch.Tensor) or isinstance(sigma, torch.Tensor):
        mu, sigma = torch.as_tensor(mu), torch.as_tensor(sigma)
        target = torch.as_tensor(target, dtype=mu.dtype, device=mu.device)
        grad_mu = -2.0 * (mu - target)
        return grad_mu, torch.broadcast_to(-2.0 * sigma, grad_mu.shape)
    mu, sigma, target = (np.asarray(x, dtype=np.float64) for x in (mu, sigma, target))
    grad_mu = -2.0 * (mu - target)
    return grad_mu, np.broadcast_to(-2.0 * sigma, grad_mu.shape).copy()


# --------------------------------------------------------------------------------------------
# Discrete bandit
# --------------------------------------------------------------------------------------------


class DiscreteBandit(gym.Env):
    """One step; reward rewards[a − start] for an action a in {start, ..., start + n − 1}
    (``Discrete(n, start)``; ``start`` ≠ 0 checks that agents and saved policies offset their
    indices the way the env expects)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, rewards: Sequence[float] = (0.0, 0.5, 1.0), start: int = 0,
                 render_mode: str | None = None):
        reward_array = np.asarray(rewards, dtype=np.float64)
        if reward_array.ndim != 1 or reward_array.size < 1:
            raise ValueError(f"rewards must be a non-empty sequence of floats, got {rewards!r}")
        if not np.all(np.isfinite(reward_array)):
            raise ValueError(f"rewards must be finite, got {rewards!r}")
        self.rewards = reward_array
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.start = int(start)
        self.action_space = spaces.Discrete(reward_array.size, start=self.start)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return _zero_observation(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        return _zero_observation(), float(self.rewards[int(action) - self.start]), True, False, {}


def _softmax(logits):
    if isinstance(logits, torch.Tensor):
        return torch.softmax(logits, dim=-1)
    logits = np.asarray(logits, dtype=np.float64)
    # Shifting by the max leaves softmax unchanged and keeps exp from overflowing.
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _like(values, reference):
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device)
    return np.asarray(values, dtype=np.float64)


def softmax_expected_reward(logits, rewards):
    """E[r] = π·r under π = softmax(logits) (last axis = actions)."""
    pi = _softmax(logits)
    return (pi * _like(rewards, pi)).sum(-1)


def softmax_policy_gradient(logits, rewards):
    """∂(π·r)/∂logits = π ⊙ (r − π·r), π = softmax(logits) (Sutton & Barto 2018, §2.8)."""
    pi = _softmax(logits)
    r = _like(rewards, pi)
    baseline = (pi * r).sum(-1)[..., None]
    return pi * (r - baseline)


def soft_optimal_policy(rewards, alpha):
    """argmax_π π·r + α·H(π) = softmax(r / α) (maximum-entropy optimum; Haarnoja et al. 2017)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    rewards = rewards if isinstance(rewards, torch.Tensor) else np.asarray(rewards, np.float64)
    return _softmax(rewards / alpha)


def optimal_action(rewards) -> int:
    """The plain (α = 0) optimum: argmax_a r_a."""
    if isinstance(rewards, torch.Tensor):
        return int(torch.argmax(rewards))
    return int(np.argmax(np.asarray(rewards)))


# --------------------------------------------------------------------------------------------
# MultiDiscrete bandit
# --------------------------------------------------------------------------------------------


class MultiDiscreteBandit(gym.Env):
    """One step; reward Σ_j 1[a_j = targets_j] for a ``MultiDiscrete(nvec, start)`` action (or a
    ``MultiBinary(k)`` one with ``binary=True``). Targets are in the env's own units, so a
    ``start`` offset must be applied for them to pay. ``last_action``: the action received."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, nvec: Sequence[int] = (3, 5), targets: Sequence[int] = (2, 4),
                 start: Sequence[int] | None = None, binary: bool = False,
                 render_mode: str | None = None):
        self.targets = np.asarray(targets, dtype=np.int64)
        if binary:
            self.action_space = spaces.MultiBinary(len(self.targets))
        else:
            start = np.zeros(len(nvec), np.int64) if start is None else np.asarray(start)
            if len(nvec) != len(self.targets) or len(start) != len(nvec):
                raise ValueError(f"nvec, targets and start need one entry per sub-action, got "
                                 f"{list(nvec)}, {list(targets)}, {start.tolist()}")
            self.action_space = spaces.MultiDiscrete(np.asarray(nvec), start=start)
        if not self.action_space.contains(self.targets.astype(self.action_space.dtype)):
            raise ValueError(f"targets {list(targets)} are not an action of {self.action_space}")
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.render_mode = render_mode
        self.last_action = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return _zero_observation(), {}

    def step(self, action):
        action = np.asarray(action)
        as_space = action.astype(self.action_space.dtype)
        if not (np.array_equal(as_space, action) and self.action_space.contains(as_space)):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        self.last_action = action
        return (_zero_observation(), float(np.sum(action == self.targets)), True, False, {})


def _check_targets(targets, shape) -> None:
    if len(shape) < 2 or len(targets) != shape[-2] or not all(0 <= k < shape[-1] for k in targets):
        raise ValueError(f"targets {list(targets)} need one index in [0, {shape[-1]}) per factor "
                         f"of logits shaped {tuple(shape)}")


def factorized_expected_reward(logits, targets):
    """E[r] = Σ_j π_j(k_j) under independent π_j = softmax(logits[j]) (logits (..., k, n),
    ``targets`` k_j as indices from 0)."""
    pi = _softmax(logits)
    _check_targets(targets, pi.shape)
    return pi[..., list(range(len(targets))), list(targets)].sum(-1)


def factorized_policy_gradient(logits, targets):
    """∂E[r]/∂logits[j] = π_j(k_j) · (e_{k_j} − π_j): the discrete bandit's gradient per
    factor, with rewards e_{k_j}."""
    pi = _softmax(logits)
    _check_targets(targets, pi.shape)
    one_hot = np.zeros(tuple(pi.shape[-2:]))
    one_hot[list(range(len(targets))), list(targets)] = 1.0
    one_hot = _like(one_hot, pi)
    return (pi * one_hot).sum(-1, keepdims=True) * (one_hot - pi)


# --------------------------------------------------------------------------------------------
# Registration (runs on `import envs`)
# --------------------------------------------------------------------------------------------


def _register() -> None:
    # Skip ids already present: re-importing (e.g. importlib.reload) would otherwise make
    # Gymnasium warn about overriding them. No max_episode_steps: the envs terminate by
    # themselves, and a TimeLimit of 1 would mark every step truncated as well as terminated.
    for env_id, entry_point in (
        (CONTINUOUS_BANDIT_ID, "pathwise.envs.testbeds:ContinuousBandit"),
        (DISCRETE_BANDIT_ID, "pathwise.envs.testbeds:DiscreteBandit"),
        (MULTI_DISCRETE_BANDIT_ID, "pathwise.envs.testbeds:MultiDiscreteBandit"),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


_register()
