"""A policy: an MLP and a distribution head. What a saved policy is.

Actions live in the *policy's* space: [-1, 1]^d for Box envs (a tanh-squashed Gaussian),
an index 0..n-1 for Discrete ones, k indices for factorized ones (MultiDiscrete, MultiBinary,
a Box discretized into ``action_bins``). ``predict`` maps them to the env's own action space
(the Box bounds; a ``Discrete(n, start)``'s offset; bin i of N ↦ low + i·(high − low)/(N − 1)),
so a policy acts in a raw Gymnasium env and satisfies Stable-Baselines3's ``predict`` protocol.

Factorized head. k sub-actions of n_1..n_k values are one distribution,
``Independent(GumbelSoftmax(logits), 1)`` with logits (B, k, n_max), n_max = max n_j: the
form every estimator accepts (``policies.estimators``, module doc). Unequal sizes are padded:
sub-action j's values n_j..n_max − 1 get the logit ``PAD_LOGIT``, whose probability is 0 in
float32 (so they are never drawn, add 0 to the entropy and weigh 0 in an exact sum) while
staying finite (−inf would make the entropy's 0·log 0 a NaN). The network's outputs at padded
places are overwritten, so they get no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.distributions import Independent

from pathwise.policies.distributions import GumbelSoftmax, TanhNormal, bound_log_std
from pathwise.policies.networks import mlp
from pathwise.spaces import bin_action, scale_action

# Logit of a padded (nonexistent) value of a shorter sub-action: exp(−1e4 / τ) is 0 in float32
# for any temperature up to about 100, and every sum it enters stays finite.
PAD_LOGIT = -1e4


class Policy(nn.Module):
    """``obs → distribution``: a ``TanhNormal`` (Box), a ``GumbelSoftmax`` (Discrete) or an
    ``Independent(GumbelSoftmax)`` over k sub-actions (factorized; module doc).

    Args:
        obs_dim: observation size.
        action_dim: number of action dimensions (Box), of actions (Discrete) or of
            sub-actions (factorized).
        discrete: a categorical head (Discrete, or factorized when ``action_nvec`` is given).
        hidden_sizes: MLP widths.
        action_low, action_high: the env's Box bounds, for ``predict`` (Box, or binned Box).
        action_start: the env's ``Discrete(n, start)`` offset (an int), or the per-sub-action
            offsets of a ``MultiDiscrete(nvec, start)`` (a list), for ``predict``.
        log_std_bounds: range of the Gaussian's log-std (see ``bound_log_std``).
        action_nvec: sub-action sizes of a factorized action (None otherwise).
        action_bins: N > 0: the env has a Box action space, each dimension cut into N values
            (``action_nvec`` = [N] * d); ``predict`` returns Box actions.
    """

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool,
                 hidden_sizes: Sequence[int] = (256, 256),
                 action_low: Sequence[float] | None = None,
                 action_high: Sequence[float] | None = None,
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0),
                 action_start: int | Sequence[int] = 0,
                 action_nvec: Sequence[int] | None = None,
                 action_bins: int = 0):
        super().__init__()
        self.obs_dim, self.action_dim, self.discrete = obs_dim, action_dim, discrete
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.log_std_bounds = tuple(float(b) for b in log_std_bounds)
        self.action_nvec = None if action_nvec is None else tuple(int(n) for n in action_nvec)
        self.action_bins = int(action_bins)
        self.factorized = self.action_nvec is not None
        if self.factorized:
            if not discrete or len(self.action_nvec) != action_dim:
                raise ValueError(f"Policy: a factorized action needs discrete=True and "
                                 f"action_dim = len(action_nvec); got discrete={discrete}, "
                                 f"action_dim={action_dim}, action_nvec={list(self.action_nvec)}")
            if self.action_bins and set(self.action_nvec) != {self.action_bins}:
                raise ValueError(f"Policy: action_bins={self.action_bins} means "
                                 f"action_nvec=[{self.action_bins}] * d, got "
                                 f"{list(self.action_nvec)}")
            self.max_categories = max(self.action_nvec)
            out_dim = action_dim * self.max_categories
            pad = torch.arange(self.max_categories) >= torch.tensor(self.action_nvec)[:, None]
            self.padded = bool(pad.any())
            # Derived from the spec: not saved with the weights.
            self.register_buffer("pad_mask", pad, persistent=False)
        elif self.action_bins:
            raise ValueError("Policy: action_bins needs action_nvec ([action_bins] * d)")
        else:
            # Discrete: logits. Box: mean and raw log-std of the pre-tanh Gaussian.
            out_dim = action_dim if discrete else 2 * action_dim
        self.net = mlp(obs_dim, out_dim, self.hidden_sizes)
        if isinstance(action_start, (int, np.integer)):
            self.action_start = int(action_start)
        else:
            self.action_start = [int(s) for s in action_start]
        if not discrete or self.action_bins:
            low = torch.as_tensor(action_low if action_low is not None else [-1.0] * action_dim,
                                  dtype=torch.float32)
            high = torch.as_tensor(action_high if action_high is not None else [1.0] * action_dim,
                                   dtype=torch.float32)
            self.register_buffer("action_low", low)
            self.register_buffer("action_high", high)

    def spec(self) -> dict:
        """Constructor arguments as plain types: enough to rebuild this policy."""
        spec = {"obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "discrete": self.discrete, "hidden_sizes": list(self.hidden_sizes),
                "log_std_bounds": list(self.log_std_bounds)}
        if self.factorized:  # new keys only here: older Box and Discrete files stay identical
            spec["action_nvec"] = list(self.action_nvec)
            spec["action_bins"] = self.action_bins
        if self.discrete and not self.action_bins:
            spec["action_start"] = self.action_start
        else:
            spec["action_low"] = self.action_low.tolist()
            spec["action_high"] = self.action_high.tolist()
        return spec

    def distribution(self, obs: torch.Tensor, temperature: float | torch.Tensor = 1.0,
                     hard: bool = False):
        """π(·|obs). ``temperature``/``hard`` configure the Gumbel-softmax relaxation only."""
        out = self.net(obs)
        if self.factorized:
            logits = out.unflatten(-1, (self.action_dim, self.max_categories))
            if self.padded:
                logits = logits.masked_fill(self.pad_mask, PAD_LOGIT)
            dist = Independent(GumbelSoftmax(logits, temperature, hard=hard,
                                             validate_args=False), 1, validate_args=False)
            if self.padded:  # exact enumerates the Π n_j real joint actions, not n_max^k
                dist.factor_sizes = self.action_nvec
            return dist
        if self.discrete:
            return GumbelSoftmax(out, temperature, hard=hard, validate_args=False)
        mean, raw_log_std = out.chunk(2, dim=-1)
        log_std = bound_log_std(raw_log_std, *self.log_std_bounds)
        return TanhNormal(mean, log_std.exp(), validate_args=False)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """An action in the policy's space: [-1, 1]^d (Box), a long index (Discrete) or k long
        indices (factorized)."""
        dist = self.distribution(obs)
        action = dist.mode if deterministic else dist.sample()
        return action.argmax(-1) if self.discrete else action

    def to_env_action(self, action: torch.Tensor) -> np.ndarray:
        """Policy-space action → the env's action space: rescaled to the Box bounds, bins mapped
        onto them, or offset by the space's ``start`` (the maps training used, ``envs.make.
        TorchVecEnv``). Bins are mapped in float64 on the host, exactly as the env adapter
        does, then cast to float32."""
        if self.action_bins:
            low = self.action_low.cpu().double().numpy()
            high = self.action_high.cpu().double().numpy()
            return bin_action(action.cpu().numpy(), low, high, self.action_bins) \
                .astype(np.float32)
        if self.factorized:
            return action.cpu().numpy() + np.asarray(self.action_start, dtype=np.int64)
        if self.discrete:
            return (action + self.action_start).cpu().numpy()
        return scale_action(action, self.action_low, self.action_high).cpu().numpy()

    def mismatch(self, observation_space, action_space) -> str | None:
        """Why this policy cannot act in an env with these spaces (shapes, kind, Box bounds,
        starts), in one line; None when it fits. Same shapes but other bounds would make it
        act in the range it was trained for, which the env clips or rejects. A policy trained
        with ``action_bins`` acts in the Box it discretized; ``MultiBinary(k)`` and
        ``MultiDiscrete([2] * k)`` are the same actions."""
        env_kind, env_size, env_start = _action_space_of(action_space)
        obs_dim = int(observation_space.shape[0]) if observation_space.shape else 0
        if self.discrete and not self.action_bins:
            kind, size = ("MultiDiscrete", list(self.action_nvec)) if self.factorized \
                else ("Discrete", self.action_dim)
        else:
            kind, size = "Box", self.action_dim
        if (self.obs_dim, kind, size) != (obs_dim, env_kind, env_size):
            return (f"the policy takes {self.obs_dim}-dim observations and acts in "
                    f"{_describe(kind, size)}; the env has {obs_dim}-dim observations and "
                    f"{_describe(env_kind, env_size)} actions")
        if kind != "Box":
            if self.action_start != env_start:
                return f"the policy's actions start at {self.action_start}, the env's at " \
                       f"{env_start}"
            return None
        low, high = self.action_low.cpu().numpy(), self.action_high.cpu().numpy()
        if not (np.allclose(low, action_space.low) and np.allclose(high, action_space.high)):
            return (f"the policy acts in [{low.tolist()}, {high.tolist()}], the env in "
                    f"[{action_space.low.tolist()}, {action_space.high.tolist()}]")
        return None

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Stable-Baselines3's protocol: ``(actions, state)`` for one or a batch of obs."""
        param = next(self.parameters())
        obs = torch.as_tensor(np.asarray(observation), dtype=param.dtype, device=param.device)
        if obs.dim() not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"predict expects observations of shape ({self.obs_dim},) or "
                             f"(batch, {self.obs_dim}); got {tuple(obs.shape)}")
        single = obs.dim() == 1
        actions = self.to_env_action(self.act(obs.reshape(-1, self.obs_dim), deterministic))
        return (actions[0] if single else actions), state


def _action_space_of(space) -> tuple[str, object, object]:
    """``(kind, size, start)`` of a Gymnasium action space, by duck typing (no gymnasium
    import in ``policies``): Box → ("Box", d, None); Discrete(n, start) → ("Discrete", n,
    start); MultiDiscrete(nvec, start) and MultiBinary(k) → ("MultiDiscrete", nvec, start)."""
    if hasattr(space, "nvec"):
        return ("MultiDiscrete", [int(n) for n in np.ravel(space.nvec)],
                [int(s) for s in np.ravel(getattr(space, "start", np.zeros_like(space.nvec)))])
    if hasattr(space, "low"):
        return "Box", int(space.shape[0]) if space.shape else 0, None
    if hasattr(space, "n") and space.shape == ():  # Discrete
        return "Discrete", int(space.n), int(getattr(space, "start", 0))
    if hasattr(space, "n"):  # MultiBinary(k): k sub-actions of 2 values
        k = int(np.prod(space.shape))
        return "MultiDiscrete", [2] * k, [0] * k
    return type(space).__name__, None, None


def _describe(kind: str, size) -> str:
    if kind == "Box":
        return f"Box({size},)"
    return f"{kind}({size})"
