"""The map between a policy's action space and an env's, shared by the policies (which act in
[-1, 1]^d) and the envs (which step in their own units).

Like ``pathwise.errors``, a leaf: it imports nothing from pathwise.
"""

from __future__ import annotations

import numpy as np
import torch


def scale_action(policy_action, low, high):
    """Map an action from the policy's box [-1, 1]^d affinely onto the env's box [low, high]:

        a = low + (p + 1) / 2 · (high − low)

    (the inverse of Stable-Baselines3's `BasePolicy.scale_action`, common/policies.py). Works on
    numpy arrays and on torch tensors (the result stays on the tensor's device). The result is
    clipped to [low, high]: float rounding can land just past `high`, and some envs (MuJoCo)
    act on out-of-bounds actions instead of clipping them.
    """
    if isinstance(policy_action, torch.Tensor):
        low = torch.as_tensor(low, dtype=policy_action.dtype, device=policy_action.device)
        high = torch.as_tensor(high, dtype=policy_action.dtype, device=policy_action.device)
        action = low + (policy_action + 1.0) * 0.5 * (high - low)
        return torch.minimum(torch.maximum(action, low), high)
    low, high = np.asarray(low), np.asarray(high)
    action = low + (np.asarray(policy_action) + 1.0) * 0.5 * (high - low)
    return np.minimum(np.maximum(action, low), high)  # np.clip's values, at a third of its cost
