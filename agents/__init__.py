"""pathwise agents: SAC and REINFORCE, the training loop, checkpoints and evaluation."""

from agents.checkpoint import load_policy
from agents.runner import train

__all__ = ["train", "load_policy"]
