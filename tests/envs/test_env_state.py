"""TorchVecEnv.state_dict / load_state_dict: a checkpoint holds the envs' state by replaying
each sub-env's running episode, and refuses what it cannot rebuild exactly."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from pathwise.envs import EnvStateError, make_vec_env


def through_a_file(state: dict) -> dict:
    """The state as a checkpoint gives it back: saved, then loaded with weights_only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def random_steps(vec, steps: int):
    result = None
    for _ in range(steps):
        result = vec.step(vec.random_actions())
    return result


@pytest.mark.parametrize("env_id,steps", [("CartPole-v1", 70), ("Pendulum-v1", 250)])
def test_restored_envs_continue_exactly_like_the_originals(env_id, steps):
    with make_vec_env(env_id, num_envs=2, seed=3) as original, \
            make_vec_env(env_id, num_envs=2, seed=99) as restored:
        original.reset()
        last = random_steps(original, steps)  # past an episode end: the records restart there
        obs = restored.load_state_dict(through_a_file(original.state_dict()))
        assert torch.equal(obs, last.obs)
        ended = 0
        for _ in range(300):
            a, b = original.step(original.random_actions()), restored.step(
                restored.random_actions())
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            ended += len(a.episode_returns)
        assert ended > 0  # the episode statistics continued too


class GlobalRandomEnv(gym.Env):
    """Draws from numpy's global generator instead of its own np_random: not replayable."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.random.standard_normal(1).astype(np.float32), {}

    def step(self, action):
        return np.random.standard_normal(1).astype(np.float32), 0.0, False, False, {}


GLOBAL_RANDOM_ID = "pathwise-test/GlobalRandom-v0"
if GLOBAL_RANDOM_ID not in gym.registry:
    gym.register(GLOBAL_RANDOM_ID, entry_point=GlobalRandomEnv)


def test_an_env_whose_replay_diverges_is_refused():
    with make_vec_env(GLOBAL_RANDOM_ID, num_envs=1, seed=0) as original, \
            make_vec_env(GLOBAL_RANDOM_ID, num_envs=1, seed=0) as other:
        original.reset()
        random_steps(original, 5)
        with pytest.raises(EnvStateError, match="did not replay to the saved observation"):
            other.load_state_dict(through_a_file(original.state_dict()))


def test_an_episode_reset_with_options_is_not_replayable():
    with make_vec_env("CartPole-v1", num_envs=1, seed=0) as original, \
            make_vec_env("CartPole-v1", num_envs=1, seed=0) as other:
        original.reset()
        original.vec_env.unwrapped.envs[0].reset(options={"low": -0.01, "high": 0.01})
        state = original.state_dict()
        assert state["replayable"] is False
        with pytest.raises(EnvStateError, match="not recorded"):
            other.load_state_dict(state)
