"""A one-step MultiDiscrete (or MultiBinary) bandit for the factorized-action tests.

Sub-action j pays 1 when the env receives ``targets[j]`` (in the env's own units, so a
``start`` offset must be applied for it to pay), 0 otherwise: the best joint action returns k,
and a policy that gets one sub-action wrong returns k − 1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MULTI_BANDIT_ID = "pathwise-test/MultiDiscreteBandit-v0"


class MultiDiscreteBandit(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, nvec=(3, 5), start=(1, 0), targets=(3, 1), binary: bool = False,
                 render_mode=None):
        if binary:
            self.action_space = spaces.MultiBinary(len(targets))
        else:
            self.action_space = spaces.MultiDiscrete(np.asarray(nvec), start=np.asarray(start))
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.targets = np.asarray(targets)
        self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        action = np.asarray(action)
        assert self.action_space.contains(action.astype(self.action_space.dtype)), action
        self.last_action = action
        reward = float(np.sum(action == self.targets))
        return np.zeros(1, dtype=np.float32), reward, True, False, {}


if MULTI_BANDIT_ID not in gym.registry:
    gym.register(id=MULTI_BANDIT_ID, entry_point=MultiDiscreteBandit)

MULTI_BINARY_ID = "pathwise-test/MultiBinaryBandit-v0"
if MULTI_BINARY_ID not in gym.registry:
    gym.register(id=MULTI_BINARY_ID, entry_point=MultiDiscreteBandit,
                 kwargs={"binary": True, "targets": (1, 0, 1)})
