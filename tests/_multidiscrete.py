"""Test ids of the library's MultiDiscrete bandit (``pathwise.envs.testbeds``) with a
``start`` offset, and its MultiBinary form.

Sub-action j pays 1 when the env receives ``targets[j]`` (in the env's own units, so the
``start`` offset must be applied for it to pay), 0 otherwise: the best joint action returns k,
and a policy that gets one sub-action wrong returns k − 1.
"""

from __future__ import annotations

import gymnasium as gym

from pathwise.envs.testbeds import MultiDiscreteBandit

MULTI_BANDIT_ID = "pathwise-test/MultiDiscreteBandit-v0"
if MULTI_BANDIT_ID not in gym.registry:
    gym.register(id=MULTI_BANDIT_ID, entry_point=MultiDiscreteBandit,
                 kwargs={"nvec": (3, 5), "start": (1, 0), "targets": (3, 1)})

MULTI_BINARY_ID = "pathwise-test/MultiBinaryBandit-v0"
if MULTI_BINARY_ID not in gym.registry:
    gym.register(id=MULTI_BINARY_ID, entry_point=MultiDiscreteBandit,
                 kwargs={"binary": True, "targets": (1, 0, 1)})
