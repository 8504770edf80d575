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


def bin_action(index, low, high, bins: int):
    """Map bin indices to the env's box: bin i of N (0 ≤ i < N) is the point

        a = low + i · (high − low) / (N − 1)

    so bin 0 is ``low`` and bin N − 1 is ``high``, N evenly spaced values per dimension
    (Tang & Agrawal 2020, "Discretizing Continuous Action Space for On-Policy Optimization",
    §3). ``index``: integers of shape (..., d), numpy or torch (the result is float, on the
    tensor's device). Clipped to [low, high] like ``scale_action``.
    """
    if bins < 2:
        raise ValueError(f"bin_action: needs at least 2 bins, got {bins}")
    if isinstance(index, torch.Tensor):
        dtype = torch.float32 if not index.is_floating_point() else index.dtype
        low = torch.as_tensor(low, dtype=dtype, device=index.device)
        high = torch.as_tensor(high, dtype=dtype, device=index.device)
        action = low + index.to(dtype) * ((high - low) / (bins - 1))
        return torch.minimum(torch.maximum(action, low), high)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    action = low + np.asarray(index, dtype=np.float64) * ((high - low) / (bins - 1))
    return np.minimum(np.maximum(action, low), high)
