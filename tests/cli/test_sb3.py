"""A saved policy follows Stable-Baselines3's predict protocol: SB3's own evaluate_policy
runs it unchanged, and scores it as pathwise's evaluation does."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import pathwise
from pathwise.envs.make import make_env
from pathwise.training.evaluation import evaluate


def test_sb3_evaluate_policy_on_a_loaded_discrete_policy(discrete_run):
    policy = pathwise.load_policy(discrete_run, device="cpu")
    env_id = policy.metadata["env_id"]
    mean, std = evaluate_policy(policy, Monitor(make_env(env_id)), n_eval_episodes=5,
                                deterministic=True)
    ours = evaluate(policy, env_id, episodes=5)
    # The bandit's reward is a fixed function of the action: both must agree exactly.
    assert np.isclose(mean, ours.return_mean) and np.isclose(std, ours.return_std)


def test_sb3_evaluate_policy_on_a_loaded_box_policy(continuous_run):
    policy = pathwise.load_policy(continuous_run / "policy.pt")
    env = Monitor(make_env(policy.metadata["env_id"]))
    episode_rewards, lengths = evaluate_policy(policy, env, n_eval_episodes=3,
                                               return_episode_rewards=True)
    assert len(episode_rewards) == 3 and all(np.isfinite(episode_rewards))
    action, state = policy.predict(env.observation_space.sample())
    assert state is None and env.action_space.contains(action.astype(env.action_space.dtype))
    batch, _ = policy.predict(np.stack([env.observation_space.sample()] * 4))
    assert batch.shape == (4, *env.action_space.shape)


def test_predict_refuses_observations_of_the_wrong_size_in_one_line(continuous_run):
    policy = pathwise.load_policy(continuous_run / "policy.pt")
    wrong = np.zeros(policy.obs_dim + 1, dtype=np.float32)
    with pytest.raises(ValueError, match=rf"shape \({policy.obs_dim},\).*got \({wrong.size},\)"):
        policy.predict(wrong)
    with pytest.raises(ValueError, match="got \\(2, 2, "):
        policy.predict(np.zeros((2, 2, policy.obs_dim), dtype=np.float32))
