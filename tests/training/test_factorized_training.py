"""SAC on factorized actions through the shared loop: the MultiDiscrete bandit's best joint
action found by every estimator kind, MultiBinary, and ``action_bins`` on the torch Pendulum:
recorded in config.yaml and policy.pt, evaluated on Gymnasium's Pendulum-v1 by pathwise and
by Stable-Baselines3's ``evaluate_policy`` alike."""

import math

import numpy as np
import pytest
import torch
from _training import run
from omegaconf import OmegaConf
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from pathwise.agents.sac import SACConfig
from pathwise.envs.make import make_env
from pathwise.envs.seeding import EVALUATION, derive_seeds
from pathwise.training.checkpoint import load_policy
from pathwise.training.evaluation import evaluate
from pathwise.training.tracking import read_metrics
from tests._multidiscrete import MULTI_BANDIT_ID, MULTI_BINARY_ID


def check_trained(result, agent, init):
    """Updates ran past learning_starts, the policy moved, every logged loss is finite."""
    assert any(not torch.equal(p, init[n]) for n, p in agent.policy.named_parameters())
    losses = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "losses/critic" in r]
    assert losses, "no update was logged"
    for record in losses:
        for key in ("losses/critic", "losses/actor", "losses/alpha", "charts/alpha",
                    "charts/entropy"):
            assert math.isfinite(record[key]), (key, record)


@pytest.mark.parametrize("estimator", ["exact", "gumbel_rao", "score"])
def test_sac_finds_the_best_joint_action_of_the_multidiscrete_bandit(tmp_path, monkeypatch,
                                                                     estimator):
    """MultiDiscrete([3, 5], start=(1, 0)) paying 1 per sub-action at (3, 1): the best joint
    action returns 2, and only if the start offset and the padding of the 3-way sub-action are
    handled right."""
    result, agent, init = run(tmp_path, monkeypatch, MULTI_BANDIT_ID, estimator,
                              total_steps=400)
    check_trained(result, agent, init)
    assert agent.factorized and agent.action_nvec == [3, 5] and agent.policy.padded
    assert result.final_eval.return_mean == 2.0
    index = agent.policy.act(torch.zeros(1, 1), deterministic=True)[0].tolist()
    assert index == [2, 1]  # env actions (3, 1) minus the start (1, 0)


@pytest.mark.parametrize("estimator", ["reinmax", "straight_through", "pathwise"])
def test_multibinary_smoke(tmp_path, monkeypatch, estimator):
    result, agent, init = run(tmp_path, monkeypatch, MULTI_BINARY_ID, estimator,
                              total_steps=200, num_envs=2)
    check_trained(result, agent, init)
    assert agent.action_nvec == [2, 2, 2] and not agent.policy.padded


def test_action_bins_on_the_torch_pendulum_is_saved_and_evaluated_in_box_units(
        tmp_path, monkeypatch):
    agent_cfg = SACConfig(hidden_sizes=[32, 32], batch_size=32, learning_starts=100,
                          buffer_size=10_000)
    result, agent, init = run(tmp_path, monkeypatch, "pathwise/Pendulum-v1", "pathwise",
                              total_steps=300, agent=agent_cfg, action_bins=11, seed=4,
                              eval_episodes=2)
    check_trained(result, agent, init)
    assert agent.action_nvec == [11] and agent.critic.net.layers[0].weight.shape[1] == 3 + 11
    saved = OmegaConf.load(result.run_dir / "config.yaml")
    assert saved.action_bins == 11
    policy = load_policy(result.run_dir)
    assert policy.spec()["action_bins"] == 11 and policy.metadata["eval_env_id"] == "Pendulum-v1"
    # The run evaluated on Gymnasium's Pendulum-v1; evaluating the saved policy again there
    # gives the same returns.
    again = evaluate(policy, "Pendulum-v1", episodes=2, seed=4)
    assert again.returns == pytest.approx(result.final_eval.returns, rel=1e-6)
    # Stable-Baselines3's evaluator, on the original Box env started like our episode 0.
    first_seed = derive_seeds(4, 1, EVALUATION)[0]
    env = Monitor(make_env("Pendulum-v1", seed=first_seed))
    rewards, lengths = evaluate_policy(policy, env, n_eval_episodes=1,
                                       return_episode_rewards=True)
    assert lengths == [200]
    assert rewards[0] == pytest.approx(result.final_eval.returns[0], rel=1e-5)
    action, _ = policy.predict(env.observation_space.sample())
    assert env.action_space.contains(action)
    assert np.isclose((action[0] + 2.0) / 0.4, round((action[0] + 2.0) / 0.4), atol=1e-5)
