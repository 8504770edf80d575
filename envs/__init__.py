"""Where agents act: env construction (`make`) and testbeds with known gradients (`testbeds`).

Importing the package registers the testbeds with Gymnasium, so their ids work anywhere an env
id does (`make_env("pathwise/ContinuousBandit-v0")`, `pathwise train env=...`).
"""

from pathwise.envs import testbeds  # noqa: F401  (registers the testbed ids)
from pathwise.envs.make import (
    EnvError,
    EnvStateError,
    StepResult,
    TorchVecEnv,
    check_spaces,
    make_env,
    make_vec_env,
    scale_action,
)

__all__ = [
    "EnvError",
    "EnvStateError",
    "StepResult",
    "TorchVecEnv",
    "check_spaces",
    "make_env",
    "make_vec_env",
    "scale_action",
]
