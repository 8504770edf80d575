"""pathwise: policy-gradient estimators (pathwise, score function, exact) on Gymnasium tasks.

The public API is imported on first use (PEP 562), so that ``pathwise --help`` and light
submodules do not pay for importing torch:

    from pathwise import SAC, Reinforce, APG, SHAC   # Stable-Baselines3's shape (pathwise.api)
    from pathwise import train, load_policy   # a config in, a run dir out; a saved policy
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

__version__ = "0.2.0"

# torch's CPU thread pool (GNU OpenMP) keeps idle threads spinning by default. Two runs that
# share the cores then burn each other's time: two HalfCheetah runs of 2 threads each on 2
# cores took 6x as long as with passive waiting (benchmarks/threads.py; README, Speed), which
# leaves a run alone on the cores about as fast. libgomp reads the variable when torch
# loads, so this only takes effect when pathwise is imported first (the CLI always is); a
# value the user set wins.
DEFAULTED_ENV: tuple[str, ...] = ()  # what this import set (benchmarks unset it for SB3)
if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    DEFAULTED_ENV = ("OMP_WAIT_POLICY",)

if TYPE_CHECKING:  # pragma: no cover
    from pathwise.api import APG, SAC, SHAC, Reinforce
    from pathwise.policies.estimators import get_estimator
    from pathwise.training.checkpoint import load_policy
    from pathwise.training.loop import train

__all__ = ["SAC", "Reinforce", "APG", "SHAC", "train", "load_policy", "get_estimator",
           "__version__"]

_LAZY = {
    "SAC": "pathwise.api",
    "Reinforce": "pathwise.api",
    "APG": "pathwise.api",
    "SHAC": "pathwise.api",
    "train": "pathwise.training.loop",
    "load_policy": "pathwise.training.checkpoint",
    "get_estimator": "pathwise.policies.estimators",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pathwise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
