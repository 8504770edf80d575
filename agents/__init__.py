"""pathwise agents: SAC and REINFORCE, the training loop, checkpoints and evaluation.

``train`` and ``load_policy`` are imported on first use (PEP 562), so that importing a light
submodule such as ``agents.cli`` for ``pathwise --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pathwise.training.checkpoint import load_policy
    from pathwise.training.loop import train

__all__ = ["train", "load_policy"]

_LAZY = {"train": "pathwise.training.loop", "load_policy": "pathwise.training.checkpoint"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
