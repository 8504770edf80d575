"""A policy: an MLP and a distribution head. What a saved policy is.

Actions live in the *policy's* space: [-1, 1]^d for Box envs (a tanh-squashed Gaussian),
an index 0..n-1 for Discrete ones. ``predict`` maps them to the env's own action space (the
Box bounds; a ``Discrete(n, start)``'s offset), so a policy acts in a raw Gymnasium env and
satisfies Stable-Baselines3's ``predict`` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pathwise.policies.distributions import GumbelSoftmax, TanhNormal, bound_log_std
from pathwise.policies.networks import mlp
from pathwise.spaces import scale_action


class Policy(nn.Module):
    """``obs → distribution``: a ``TanhNormal`` (Box) or ``GumbelSoftmax`` (Discrete).

    Args:
        obs_dim: observation size.
        action_dim: number of action dimensions (Box) or of actions (Discrete).
        discrete: which head.
        hidden_sizes: MLP widths.
        action_low, action_high: the env's Box bounds, for ``predict``.
        action_start: the env's ``Discrete(n, start)`` offset, for ``predict``.
        log_std_bounds: range of the Gaussian's log-std (see ``bound_log_std``).
    """

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool,
                 hidden_sizes: Sequence[int] = (256, 256),
                 action_low: Sequence[float] | None = None,
                 action_high: Sequence[float] | None = None,
                 log_std_bounds: tuple[float, float] = (-5.0, 2.0),
                 action_start: int = 0):
        super().__init__()
        self.obs_dim, self.action_dim, self.discrete = obs_dim, action_dim, discrete
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.log_std_bounds = tuple(float(b) for b in log_std_bounds)
        # Discrete: logits. Box: mean and raw log-std of the pre-tanh Gaussian.
        self.net = mlp(obs_dim, action_dim if discrete else 2 * action_dim, self.hidden_sizes)
        self.action_start = int(action_start)
        if not discrete:
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
        if self.discrete:
            spec["action_start"] = self.action_start
        else:
            spec["action_low"] = self.action_low.tolist()
            spec["action_high"] = self.action_high.tolist()
        return spec

    def distribution(self, obs: torch.Tensor, temperature: float | torch.Tensor = 1.0,
                     hard: bool = False):
        """π(·|obs). ``temperature``/``hard`` configure the Gumbel-softmax relaxation only."""
        out = self.net(obs)
        if self.discrete:
            return GumbelSoftmax(out, temperature, hard=hard, validate_args=False)
        mean, raw_log_std = out.chunk(2, dim=-1)
        log_std = bound_log_std(raw_log_std, *self.log_std_bounds)
        return TanhNormal(mean, log_std.exp(), validate_args=False)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """An action in the policy's space: [-1, 1]^d (Box) or a long index (Discrete)."""
        dist = self.distribution(obs)
        action = dist.mode if deterministic else dist.sample()
        return action.argmax(-1) if self.discrete else action

    def to_env_action(self, action: torch.Tensor) -> np.ndarray:
        """Policy-space action → the env's action space: rescaled to the Box bounds, or offset
        by the Discrete space's ``start`` (the map training used, ``envs.make.TorchVecEnv``)."""
        if self.discrete:
            return (action + self.action_start).cpu().numpy()
        return scale_action(action, self.action_low, self.action_high).cpu().numpy()

    def mismatch(self, observation_space, action_space) -> str | None:
        """Why this policy cannot act in an env with these spaces (shapes, kind, Box bounds,
        Discrete start), in one line; None when it fits. Same shapes but other bounds would
        make it act in the range it was trained for, which the env clips or rejects."""
        discrete = hasattr(action_space, "n")
        actions = int(action_space.n) if discrete else int(action_space.shape[0])
        obs_dim = int(observation_space.shape[0]) if observation_space.shape else 0

        def kind(is_discrete, n):
            return f"Discrete({n})" if is_discrete else f"Box({n},)"

        if (self.obs_dim, self.discrete, self.action_dim) != (obs_dim, discrete, actions):
            return (f"the policy takes {self.obs_dim}-dim observations and acts in "
                    f"{kind(self.discrete, self.action_dim)}; the env has {obs_dim}-dim "
                    f"observations and {kind(discrete, actions)} actions")
        if discrete:
            start = int(getattr(action_space, "start", 0))
            if self.action_start != start:
                return f"the policy's actions start at {self.action_start}, the env's at {start}"
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
