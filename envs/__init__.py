"""Where agents act: env construction (`make`), testbeds with known gradients (`testbeds`), and
batched torch envs (`vector`, `classic`, `control`).

Importing the package registers the testbeds and the torch envs with Gymnasium, so their ids
work anywhere an env id does (`make_env("pathwise/ContinuousBandit-v0")`,
`gymnasium.make_vec("pathwise/Pendulum-v1", num_envs=4096, device="cuda")`).

The torch envs' ids (`TORCH_ENV_IDS`), each with a `vector_entry_point` (the batched
`TorchEnv`; kwargs `device`, `dtype`, `max_episode_steps` and the task's own) and an
`entry_point` for `gymnasium.make` (`SingleEnv`, one copy on numpy). (`TorchEnv` is a task
written in torch; `make.TorchVecEnv` adapts Gymnasium's numpy envs to torch tensors.)

    pathwise/Pendulum-v1                classic.Pendulum                 200 steps
    pathwise/CartPole-v1                classic.CartPole                 500 steps
    pathwise/Acrobot-v1                 classic.Acrobot                  500 steps
    pathwise/MountainCarContinuous-v0   classic.MountainCarContinuous    999 steps
    pathwise/PointMass-v0               control.PointMass                200 steps (smooth)
    pathwise/DoublePendulum-v0          control.DoublePendulum           200 steps (chaotic)
"""

from functools import partial

import gymnasium as gym

from pathwise.envs import testbeds  # noqa: F401  (registers the testbed ids)
from pathwise.envs.classic import Acrobot, CartPole, MountainCarContinuous, Pendulum
from pathwise.envs.control import DoublePendulum, PointMass
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
from pathwise.envs.single import SingleEnv
from pathwise.envs.vector import TorchEnv

TORCH_ENVS: dict[str, type[TorchEnv]] = {
    "pathwise/Pendulum-v1": Pendulum,
    "pathwise/CartPole-v1": CartPole,
    "pathwise/Acrobot-v1": Acrobot,
    "pathwise/MountainCarContinuous-v0": MountainCarContinuous,
    "pathwise/PointMass-v0": PointMass,
    "pathwise/DoublePendulum-v0": DoublePendulum,
}
TORCH_ENV_IDS = tuple(TORCH_ENVS)
# Torch ports of Gymnasium tasks → the Gymnasium original, on which their policies are
# evaluated by default (same observations, actions and rewards).
GYMNASIUM_ORIGINALS = {"pathwise/Pendulum-v1": "Pendulum-v1", "pathwise/CartPole-v1": "CartPole-v1",
                       "pathwise/Acrobot-v1": "Acrobot-v1",
                       "pathwise/MountainCarContinuous-v0": "MountainCarContinuous-v0"}


def _register_torch_envs() -> None:
    for env_id, cls in TORCH_ENVS.items():
        if env_id not in gym.registry:  # a re-import would make Gymnasium warn
            gym.register(
                id=env_id,
                entry_point=partial(SingleEnv, cls),
                vector_entry_point=cls,
                max_episode_steps=cls.default_max_episode_steps,
            )


_register_torch_envs()

__all__ = [
    "GYMNASIUM_ORIGINALS",
    "TORCH_ENVS",
    "TORCH_ENV_IDS",
    "Acrobot",
    "CartPole",
    "DoublePendulum",
    "EnvError",
    "EnvStateError",
    "MountainCarContinuous",
    "Pendulum",
    "PointMass",
    "SingleEnv",
    "StepResult",
    "TorchEnv",
    "TorchVecEnv",
    "check_spaces",
    "make_env",
    "make_vec_env",
    "scale_action",
]
