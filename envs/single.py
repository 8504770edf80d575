"""`gymnasium.make("pathwise/<Id>")`: one copy of a torch task as a plain Gymnasium env.

The torch envs are built for batches (`gymnasium.make_vec`), but a single env on numpy is what
evaluation, videos, Gymnasium's env checker and `SyncVectorEnv` expect, so every id also
makes one: a `TorchEnv` of one row on the CPU behind the usual `gym.Env` interface
(numpy observations, float rewards, bool flags). It steps the same physics and draws its reset
from the same seeded stream, so `gym.make(id).reset(seed=s)` starts where
`gym.make_vec(id, num_envs=1).reset(seed=s)` does.

Gymnasium's `TimeLimit` (added by `gym.make`) truncates it, as for any Gymnasium env; the
inner vector env's own time limit is switched off. After `terminated` the caller must
`reset()`, as with any Gymnasium env (stepping on continues from a fresh state).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pathwise.envs.vector import TorchEnv

__all__ = ["SingleEnv"]


class SingleEnv(gym.Env):
    """One env of task `vector_cls` on numpy; `kwargs` go to its constructor (e.g. `g=9.81`).

    `render_mode="rgb_array"` works for the tasks that name a Gymnasium twin
    (`vector_cls.gymnasium_id`): that env draws the frame from this one's state.
    """

    def __init__(
        self, vector_cls: type[TorchEnv], render_mode: str | None = None, **kwargs: Any
    ):
        twin = getattr(vector_cls, "gymnasium_id", None)
        self.metadata = {"render_modes": ["rgb_array"] if twin else []}
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"{vector_cls.__name__} cannot render with "
                             f"render_mode={render_mode!r} (supported: "
                             f"{self.metadata['render_modes']})")
        self.vector_env = vector_cls(1, **kwargs)
        self.vector_env.max_episode_steps = None  # gym.make's TimeLimit truncates instead
        self.observation_space = self.vector_env.single_observation_space
        self.action_space = self.vector_env.single_action_space
        self.render_mode = render_mode
        self._renderer = None
        if render_mode is not None:
            self._renderer = gym.make(twin, render_mode=render_mode).unwrapped
            self._renderer.reset(seed=0)  # sets the attributes its render() reads
            self.metadata["render_fps"] = self._renderer.metadata["render_fps"]

    @property
    def state(self) -> np.ndarray:
        """The state as Gymnasium's `env.unwrapped.state` holds it: a float64 array."""
        return self.vector_env.state[0].detach().cpu().numpy().astype(np.float64)

    @state.setter
    def state(self, value) -> None:
        self.vector_env.state = torch.as_tensor(np.asarray(value, dtype=np.float64))[None]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            # All randomness comes from `self.np_random`, as Gymnasium expects of an env (so
            # that restoring its state replays the episode: `make.TorchVecEnv.state_dict`).
            seed = int(self.np_random.integers(2**63))
        obs, _ = self.vector_env.reset(seed=seed, options=options)
        return self._numpy_obs(obs), {}

    def step(self, action):
        action = torch.as_tensor(np.asarray(action))[None]
        _, reward, terminated, _, info = self.vector_env.step(action)
        # The episode's own last observation, not the autoreset one.
        return self._numpy_obs(info["final_obs"]), float(reward[0]), bool(terminated[0]), False, {}

    def render(self):
        if self._renderer is None:
            return None
        self._renderer.state = self.state
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
        self.vector_env.close()

    def _numpy_obs(self, obs: torch.Tensor) -> np.ndarray:
        return obs[0].detach().cpu().numpy().astype(self.observation_space.dtype)
