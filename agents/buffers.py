"""Storage that lives on the run's device: a replay buffer (SAC) and episode storage
(REINFORCE). Data crosses host↔device once, at the env boundary; everything after is
tensor indexing on the device."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, obs_dim)
    action: torch.Tensor  # (B, action_dim) float (Box) or (B,) long (Discrete)
    reward: torch.Tensor  # (B,)
    next_obs: torch.Tensor  # (B, obs_dim): the true successor, never a reset observation
    terminated: torch.Tensor  # (B,) float: 1 where the episode ended in a terminal state


class ReplayBuffer:
    """A preallocated ring buffer of transitions.

    Only ``terminated`` is stored, not ``truncated``: a transition cut by a time limit is an
    ordinary transition whose target bootstraps from ``next_obs`` (Pardo et al. 2018, "Time
    Limits in Reinforcement Learning").
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, discrete: bool,
                 device: torch.device | str = "cpu"):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        f32 = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.zeros(self.capacity, obs_dim, **f32)
        self.next_obs = torch.zeros(self.capacity, obs_dim, **f32)
        if discrete:
            self.action = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        else:
            self.action = torch.zeros(self.capacity, action_dim, **f32)
        self.reward = torch.zeros(self.capacity, **f32)
        self.terminated = torch.zeros(self.capacity, **f32)
        self.pos = 0  # next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store a batch of transitions (one per env), wrapping around when full."""
        n = obs.shape[0]
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.obs[idx] = obs
        self.action[idx] = action
        self.reward[idx] = reward
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated.to(torch.float32)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                     self.terminated[idx])

    _FIELDS = ("obs", "action", "reward", "next_obs", "terminated")

    def state_dict(self) -> dict:
        """The filled part of the buffer and its position (for exact resume)."""
        state = {name: getattr(self, name)[: self.size].clone() for name in self._FIELDS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay buffer capacity {state['capacity']} in the checkpoint differs from "
                f"the configured {self.capacity}"
            )
        self.size, self.pos = int(state["size"]), int(state["pos"])
        for name in self._FIELDS:
            getattr(self, name)[: self.size] = state[name].to(self.device)
