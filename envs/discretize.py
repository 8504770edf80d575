"""``action_bins=N``: a Box action space seen as N evenly spaced values per dimension.

Tang & Agrawal (2020, "Discretizing Continuous Action Space for On-Policy Optimization")
replace each dimension of a Box by N atoms and the Gaussian by a factorized categorical; with
SAC the categorical policy then trains with any discrete estimator (``exact`` where the
joint set N^d is small). The agent acts in ``MultiDiscrete([N] * d)``; bin i of dimension j
is the torque (force, ...) ``low_j + i·(high_j − low_j)/(N − 1)`` (``pathwise.spaces.
bin_action``), so bin 0 is the lower bound, bin N − 1 the upper one and, for odd N on a
symmetric box, bin (N − 1)/2 is exactly 0.

Where the map is applied:

* training: the vector adapters (``make.TorchVecEnv``, ``native.NativeVecEnv``) take bin
  indices from the agent and step the env in its own units;
* a saved policy records N and the bounds in its spec and maps its indices itself, so
  ``predict`` returns Box actions and the policy runs in the original env (``pathwise eval``,
  Stable-Baselines3's ``evaluate_policy``);
* ``DiscretizeActions``: the same map as a Gymnasium wrapper, for using a discretized env
  elsewhere (another library's discrete agent, a test).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pathwise.errors import EnvError
from pathwise.spaces import bin_action


def check_action_bins(action_space: spaces.Space, bins: int, env_id: str = "this env") -> None:
    """Raise a one-line ``EnvError`` unless ``bins`` can discretize ``action_space``: an
    integer ≥ 2 and a 1-D floating-point Box with finite bounds (what ``check_spaces``
    accepts as a Box)."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise EnvError(f"action_bins must be an integer >= 2 (or 0: off), got {bins!r}")
    if not isinstance(action_space, spaces.Box):
        raise EnvError(f"action_bins={bins} discretizes a Box action space; {env_id} has "
                       f"{type(action_space).__name__} actions: drop action_bins")
    if len(action_space.shape) != 1 or not (np.all(np.isfinite(action_space.low))
                                            and np.all(np.isfinite(action_space.high))):
        raise EnvError(f"action_bins={bins} needs a 1-D Box with finite bounds; {env_id} has "
                       f"Box(shape={action_space.shape}, low={action_space.low.tolist()}, "
                       f"high={action_space.high.tolist()})")


def binned_space(box: spaces.Box, bins: int) -> spaces.MultiDiscrete:
    """The space the agent acts in: ``MultiDiscrete([bins] * d)`` for a ``Box((d,))``."""
    return spaces.MultiDiscrete(np.full(box.shape[0], int(bins), dtype=np.int64))


class DiscretizeActions(gym.ActionWrapper):
    """A Box-action env that takes ``MultiDiscrete([bins] * d)`` actions (module doc)."""

    def __init__(self, env: gym.Env, bins: int):
        check_action_bins(env.action_space, bins, env.spec.id if env.spec else "this env")
        super().__init__(env)
        self.bins = int(bins)
        box = env.action_space
        self._low, self._high = box.low.astype(np.float64), box.high.astype(np.float64)
        self._dtype = box.dtype
        self.action_space = binned_space(box, self.bins)

    def action(self, action) -> np.ndarray:
        return bin_action(np.asarray(action), self._low, self._high, self.bins).astype(self._dtype)


@dataclass(frozen=True)
class ActionLayout:
    """What the agent's actions are, for an env's action space and ``action_bins``; the
    vector adapters (``make.TorchVecEnv``, ``native.NativeVecEnv``) expose these fields as
    their ``is_discrete``, ``action_dim``, ``action_nvec``, ``action_start``, ``action_low``,
    ``action_high`` and ``action_bins``.

    ===================  ==========  ==========  ===============  ============================
    env space            discrete    dim         nvec             agent's action per env
    ===================  ==========  ==========  ===============  ============================
    Box((d,))            False       d           None             float in [-1, 1]^d
    Discrete(n)          True        n           None             long index, shape ()
    MultiDiscrete(nvec)  True        k           nvec             long indices, shape (k,)
    MultiBinary(k)       True        k           (2,) * k         long indices, shape (k,)
    Box((d,)), bins N    True        d           (N,) * d         long bin indices, (d,)
    ===================  ==========  ==========  ===============  ============================
    """

    discrete: bool  # a categorical policy (one factor, or ``len(nvec)`` of them)
    dim: int
    nvec: tuple[int, ...] | None = None  # sub-action sizes of a factorized action
    start: int | tuple[int, ...] = 0  # Discrete(n, start) / MultiDiscrete(nvec, start)
    low: np.ndarray | None = None  # float64 Box bounds (also of a binned Box)
    high: np.ndarray | None = None
    bins: int = 0


def action_layout(space: spaces.Space, bins: int = 0, env_id: str = "this env") -> ActionLayout:
    """The ``ActionLayout`` of a space ``check_spaces`` accepted; ``bins`` > 0 discretizes a
    Box (``check_action_bins``)."""
    if bins:
        check_action_bins(space, bins, env_id)
    if isinstance(space, spaces.Discrete):
        return ActionLayout(True, int(space.n), start=int(space.start))
    if isinstance(space, spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in space.nvec)
        return ActionLayout(True, len(nvec), nvec, tuple(int(s) for s in space.start))
    if isinstance(space, spaces.MultiBinary):
        k = int(space.shape[0])
        return ActionLayout(True, k, (2,) * k, (0,) * k)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    d = int(space.shape[0])
    if bins:
        return ActionLayout(True, d, (int(bins),) * d, (0,) * d, low, high, int(bins))
    return ActionLayout(False, d, low=low, high=high)


__all__ = ["ActionLayout", "DiscretizeActions", "action_layout", "binned_space",
           "check_action_bins"]
