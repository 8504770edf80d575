"""The runner's adapter for pathwise's torch envs (`vector.TorchEnv`): the same interface as
`make.TorchVecEnv`, with everything on the env's device and no host round trip per step.

`make_vec_env` returns one of these for an id whose `vector_entry_point` is a `TorchEnv`
(`pathwise/Pendulum-v1`, ...). What differs from the Gymnasium adapter:

- actions in the policy's space are rescaled onto the env's bounds (or, with ``action_bins``,
  mapped from bin indices) on the device;
- episode statistics are kept in device tensors and read on the host only when asked
  (`pop_episodes`, at log intervals): `StepResult.episode_returns` is always empty and
  `StepResult.done` is None, so nothing in a step waits for the device;
- the state for a checkpoint is the env's own `state_dict` (state, step counters, generator)
  plus the statistics counters and the observation to act from next: an exact resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pathwise.envs.discretize import action_layout
from pathwise.envs.seeding import ACTIONS, ENVS, derive_seeds
from pathwise.envs.step import StepResult
from pathwise.envs.vector import TorchEnv
from pathwise.errors import EnvStateError
from pathwise.spaces import bin_action, scale_action


class NativeVecEnv:
    """A `TorchEnv` seen by the training loop: policy-space actions in, `StepResult` out."""

    episodes_on_host = False  # the loop reads episode statistics with pop_episodes()

    def __init__(self, env: TorchEnv, env_id: str, seed: int | None = 0, action_bins: int = 0):
        self.env, self.env_id = env, env_id
        self.num_envs: int = env.num_envs
        self.device = env.device
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.obs_dim: int = int(self.single_observation_space.shape[0])
        layout = action_layout(self.single_action_space, action_bins, env_id)  # as TorchVecEnv
        self.is_discrete: bool = layout.discrete
        self.action_dim: int = layout.dim
        self.action_nvec: tuple[int, ...] | None = layout.nvec
        self.action_start = layout.start
        self.action_bins: int = layout.bins
        self.action_low = self.action_high = None
        if layout.low is not None:
            self.action_low = torch.as_tensor(layout.low, dtype=torch.float32, device=self.device)
            self.action_high = torch.as_tensor(layout.high, dtype=torch.float32,
                                               device=self.device)
        if self.action_nvec is not None:
            self._nvec = torch.tensor(self.action_nvec, device=self.device)
            self._start = torch.tensor(self.action_start, device=self.device)
        if self.action_bins:
            # (bins, d): bin i of dimension j in row i, mapped in float64 on the host and then
            # cast, bit for bit the values the policy sends Gymnasium's env at evaluation
            # (Policy.to_env_action); a step gathers from it.
            index = np.arange(self.action_bins)[:, None].repeat(self.action_dim, 1)
            values = bin_action(index, np.float64(layout.low), np.float64(layout.high),
                                self.action_bins).astype(np.float32)
            self._bin_values = torch.as_tensor(values, device=self.device)
        self._seed = seed
        self._has_reset = False
        self._obs: torch.Tensor | None = None
        self._generator = torch.Generator(device=self.device)
        zeros = torch.zeros(self.num_envs, device=self.device)
        self._running_return, self._running_length = zeros.clone(), zeros.clone()
        # Episodes ended since the last pop_episodes(): count, sum of returns and lengths.
        self._ended = torch.zeros(3, dtype=torch.float64, device=self.device)

    def __enter__(self) -> NativeVecEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env. The first reset uses the constructor's seed when given none; a
        seed reseeds the env and the generator of `random_actions`, from streams of their own
        (`seeding.derive_seeds`)."""
        if seed is None and not self._has_reset:
            seed = self._seed
        if seed is not None:
            self._generator.manual_seed(derive_seeds(seed, 1, ACTIONS)[0])
            seed = derive_seeds(seed, 1, ENVS)[0]
        obs, _ = self.env.reset(seed=seed)
        self._running_return.zero_()
        self._running_length.zero_()
        self._has_reset = True
        self._obs = obs.detach().float()
        return self._obs

    def step(self, actions: torch.Tensor) -> StepResult:
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        actions = actions.detach()
        if self.action_bins:
            env_actions = self._bin_values.gather(0, actions.long())
        elif self.action_nvec is not None:
            env_actions = actions + self._start
        elif self.is_discrete:
            env_actions = actions + self.action_start
        else:
            env_actions = scale_action(actions.float(), self.action_low, self.action_high)
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        obs, reward = obs.detach().float(), reward.detach().float()
        self._record(reward, info["_final_obs"], obs)
        return StepResult(obs, info["final_obs"].detach().float(), reward, terminated,
                          truncated, episode_returns=[], episode_lengths=[], done=None)

    def step_differentiable(self, actions: torch.Tensor):
        """One step that keeps the graph, for trainers that backpropagate through the dynamics
        (APG, SHAC): Box ``actions`` in the policy's space, with gradients, in; ``(obs, reward,
        terminated, truncated, info)`` out, as `TorchEnv.step` returns them (float32, on the
        device), carrying gradients to the actions and to the env's state (vector.py: none
        crosses an autoreset; ``info["final_obs"]`` is the true successor of every row,
        ``info["_final_obs"]`` the rows whose episode ended).

        The episode statistics (`pop_episodes`) and the observation a checkpoint stores are
        updated exactly as by `step`, from detached values. The env keeps the graph of its
        state between calls: the caller cuts it with ``envs.env.state =
        envs.env.state.detach()`` at the end of each window.
        """
        if not self._has_reset:
            raise RuntimeError("call reset() before step_differentiable()")
        if self.is_discrete:
            raise ValueError(f"{self.env_id}: differentiable steps need Box actions; this env "
                             f"has Discrete({self.action_dim}) actions")
        env_actions = scale_action(actions.float(), self.action_low, self.action_high)
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        obs, reward = obs.float(), reward.float()
        info = {**info, "final_obs": info["final_obs"].float()}
        self._record(reward.detach(), info["_final_obs"], obs.detach())
        return obs, reward, terminated, truncated, info

    def _record(self, reward: torch.Tensor, done: torch.Tensor, obs: torch.Tensor) -> None:
        """Add one step to the device-side episode statistics (read on the host only by
        pop_episodes()) and keep ``obs`` (detached) as the observation to act from next."""
        self._running_return += reward
        self._running_length += 1
        ended = done.to(torch.float64)
        self._ended += torch.stack([ended.sum(), (ended * self._running_return).sum(),
                                    (ended * self._running_length).sum()])
        self._running_return.masked_fill_(done, 0.0)
        self._running_length.masked_fill_(done, 0.0)
        self._obs = obs

    def pop_episodes(self) -> tuple[int, float, float]:
        """``(episodes, mean return, mean length)`` of the episodes ended since the last
        call (NaNs when none did). One host sync."""
        count, returns, lengths = self._ended.tolist()
        self._ended.zero_()
        if count == 0:
            return 0, float("nan"), float("nan")
        return int(count), returns / count, lengths / count

    def random_actions(self) -> torch.Tensor:
        """Uniform actions in the policy's space, from a generator seeded at reset."""
        if self.action_nvec is not None:  # floor(U·n_j): uniform on 0..n_j − 1
            u = torch.rand(self.num_envs, len(self.action_nvec), device=self.device,
                           generator=self._generator)
            return torch.minimum((u * self._nvec).long(), self._nvec - 1)
        if self.is_discrete:
            return torch.randint(0, self.action_dim, (self.num_envs,), device=self.device,
                                 generator=self._generator)
        u = torch.rand(self.num_envs, self.action_dim, device=self.device,
                       generator=self._generator)
        return u * 2.0 - 1.0

    def state_dict(self) -> dict[str, Any]:
        if not self._has_reset:
            raise RuntimeError("call reset() before state_dict()")
        return {"native": self.env.state_dict(), "obs": self._obs.cpu().clone(),
                "generator": self._generator.get_state(),
                "running": torch.stack([self._running_return, self._running_length]).cpu(),
                "ended": self._ended.cpu().clone()}

    def load_state_dict(self, state: dict) -> torch.Tensor:
        if "native" not in state:
            raise EnvStateError("the checkpoint's env state is not a torch env's")
        try:
            self.env.load_state_dict(state["native"])
            self._generator.set_state(state["generator"])
        except (ValueError, RuntimeError, KeyError) as err:
            raise EnvStateError(str(err)) from None
        running = state["running"].to(self.device)
        self._running_return.copy_(running[0])
        self._running_length.copy_(running[1])
        self._ended.copy_(state["ended"].to(self.device))
        self._has_reset = True
        self._obs = state["obs"].to(self.device)
        return self._obs

    def close(self) -> None:
        self.env.close()


def native_env_class(env_id: str):
    """The `TorchEnv` class registered as ``env_id``'s vector entry point, or None."""
    import gymnasium as gym

    spec = gym.registry.get(env_id)
    entry = getattr(spec, "vector_entry_point", None) if spec is not None else None
    return entry if isinstance(entry, type) and issubclass(entry, TorchEnv) else None


def make_native_vec_env(env_id: str, num_envs: int, seed: int | None,
                        device: str | torch.device, action_bins: int = 0,
                        **env_kwargs: Any) -> NativeVecEnv:
    cls = native_env_class(env_id)
    env = cls(num_envs, device=device, **env_kwargs)
    try:
        return NativeVecEnv(env, env_id, seed, action_bins=action_bins)
    except BaseException:
        env.close()
        raise


__all__ = ["NativeVecEnv", "make_native_vec_env", "native_env_class"]
