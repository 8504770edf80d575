"""No stored transition crosses an autoreset.

A counter env's observation is (episode, t), so every transition can be checked: `next_obs`
must be (episode, t + 1) of the same episode, never the next episode's reset observation, and
after an episode ends `obs` must be a fresh reset, (episode + 1, 0).
"""

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from pathwise.envs import make_vec_env
from pathwise.envs.seeding import ENVS, derive_seeds

TIME_LIMIT = 4


class CounterEnv(gym.Env):
    """Observation (episode, t); reward t after the step. Episode e of the env seeded s lasts
    1 + (s + e) % 5 steps, so sub-envs with different seeds end at different times, and the
    length-5 episodes run into the TimeLimit of 4 (truncated, not terminated)."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode=None):
        self.observation_space = spaces.Box(0.0, np.inf, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self.offset, self.episode, self.t = 0, -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.offset, self.episode = seed, -1
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        terminated = self.t >= episode_length(self.offset, self.episode)
        return self._obs(), float(self.t), terminated, False, {}

    def _obs(self):
        return np.array([self.episode, self.t], dtype=np.float32)


def episode_length(offset, episode):
    return 1 + (offset + episode) % 5


COUNTER_ID = "pathwise-test/Counter-v0"
if COUNTER_ID not in gym.registry:
    gym.register(COUNTER_ID, entry_point=CounterEnv, max_episode_steps=TIME_LIMIT)


def test_transitions_never_cross_an_autoreset():
    num_envs = 3
    kinds = {"terminated": 0, "truncated": 0, "both": 0}
    offsets = derive_seeds(0, num_envs, ENVS)  # the seeds sub-envs get (envs/seeding.py)
    with make_vec_env(COUNTER_ID, num_envs=num_envs, seed=0) as vec:
        obs = vec.reset()
        assert obs.tolist() == [[0.0, 0.0]] * num_envs
        running_return = [0.0] * num_envs
        for _ in range(60):
            result = vec.step(vec.random_actions())
            expected_returns, expected_lengths = [], []
            for i in range(num_envs):
                episode, t = (int(x) for x in obs[i].tolist())
                # The stored successor is the same episode, one step on.
                assert result.next_obs[i].tolist() == [episode, t + 1]
                assert result.reward[i].item() == t + 1
                running_return[i] += t + 1

                ends_itself = t + 1 == episode_length(offsets[i], episode)
                hits_limit = t + 1 == TIME_LIMIT
                assert result.terminated[i].item() == ends_itself
                assert result.truncated[i].item() == hits_limit
                if ends_itself and hits_limit:
                    kinds["both"] += 1  # Gymnasium flags both; the agent must not bootstrap
                elif ends_itself or hits_limit:
                    kinds["terminated" if ends_itself else "truncated"] += 1
                if ends_itself or hits_limit:
                    # Act next from a fresh episode.
                    assert result.obs[i].tolist() == [episode + 1, 0]
                    expected_returns.append(running_return[i])
                    expected_lengths.append(t + 1)
                    running_return[i] = 0.0
                else:
                    assert torch.equal(result.obs[i], result.next_obs[i])
            assert result.episode_returns == expected_returns
            assert result.episode_lengths == expected_lengths
            obs = result.obs
    # Every way of ending happened, several times.
    assert all(count >= 3 for count in kinds.values()), kinds
