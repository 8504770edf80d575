"""What the runner gets back from one vector step, whichever env adapter made it."""

from __future__ import annotations

from typing import NamedTuple

import torch


class StepResult(NamedTuple):
    """One vector step, as tensors on the env's device (lists for the episode statistics).

    Store `(obs_before, action, reward, next_obs, terminated)`; act next from `obs`. Where an
    episode ended, `obs` is already the next episode's reset observation, while `next_obs` is
    the ended episode's final observation, so no stored transition crosses an autoreset.
    """

    obs: torch.Tensor  # (num_envs, obs_dim) float32: what to act from next
    next_obs: torch.Tensor  # (num_envs, obs_dim) float32: true successor of this transition
    reward: torch.Tensor  # (num_envs,) float32
    terminated: torch.Tensor  # (num_envs,) bool: the MDP ended; do not bootstrap
    truncated: torch.Tensor  # (num_envs,) bool: cut short (time limit); bootstrap from next_obs
    episode_returns: list[float]  # returns of the episodes that ended this step
    episode_lengths: list[int]  # their lengths, in the same order
    # terminated | truncated per env, on the host: an agent can branch on episode ends
    # without reading the device (a GPU sync).
    done: list[bool] | None = None
