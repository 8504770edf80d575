"""Training on the torch envs through the runner (SAC, REINFORCE), and their policies
evaluated on Gymnasium's own envs: by the run, by `pathwise eval`, by SB3's evaluator."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
import torch
from _cli import run_cli
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import pathwise.training.loop as loop
from pathwise import load_policy
from pathwise.agents.reinforce import ReinforceConfig
from pathwise.agents.sac import SACConfig
from pathwise.envs.native import NativeVecEnv
from pathwise.training.config import EstimatorConfig, TrainConfig, WandbConfig
from pathwise.training.evaluation import evaluate
from pathwise.training.tracking import read_metrics


def train(tmp_path, monkeypatch, env, agent, estimator, **kwargs):
    built = {}
    build = loop.build_agent

    def spy(cfg, envs, device):
        built["envs"] = envs
        built["agent"] = build(cfg, envs, device)
        built["init"] = {n: p.detach().clone() for n, p in built["agent"].policy.named_parameters()}
        return built["agent"]

    monkeypatch.setattr(loop, "build_agent", spy)
    options = dict(eval_every=0, eval_episodes=2, log_every=100, device="cpu") | kwargs
    cfg = TrainConfig(env=env, agent=agent, estimator=EstimatorConfig(name=estimator),
                      run_dir=str(tmp_path / "run"), wandb=WandbConfig(mode="disabled"),
                      **options)
    return loop.train(cfg), built


def test_sac_on_the_torch_pendulum_learns_and_is_evaluated_on_gymnasiums(tmp_path, monkeypatch):
    agent = SACConfig(hidden_sizes=[32, 32], batch_size=64, learning_starts=200,
                      buffer_size=10_000, updates_per_step=0.25)
    result, built = train(tmp_path, monkeypatch, "pathwise/Pendulum-v1", agent, "pathwise",
                          total_steps=1800, num_envs=8, eval_every=900)
    assert isinstance(built["envs"], NativeVecEnv)
    trained = built["agent"]
    assert any(not torch.equal(p, built["init"][n]) for n, p in
               trained.policy.named_parameters())
    records = read_metrics(result.run_dir / "metrics.jsonl")
    losses = [r["losses/critic"] for r in records if "losses/critic" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    episodes = [r for r in records if "charts/episodes" in r]
    assert episodes and all(r["charts/episodic_length"] == 200.0 for r in episodes)
    # Evaluated on Gymnasium's Pendulum-v1, and so are the saved policy's defaults.
    policy = load_policy(result.run_dir)
    assert policy.metadata["eval_env_id"] == "Pendulum-v1"
    ours = evaluate(policy, "Pendulum-v1", 2, seed=0)
    assert result.final_eval.returns[:2] == ours.returns


def test_pathwise_eval_and_sb3_evaluate_a_torch_env_policy_on_gymnasium(tmp_path, monkeypatch,
                                                                        capsys):
    agent = SACConfig(hidden_sizes=[16], batch_size=32, learning_starts=64, buffer_size=1000)
    result, _ = train(tmp_path, monkeypatch, "pathwise/Pendulum-v1", agent, "pathwise",
                      total_steps=200, num_envs=4)
    code, out, err = run_cli(capsys, "eval", result.run_dir, "--episodes", "2", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["env"] == "Pendulum-v1"
    assert record["returns"] == result.final_eval.returns
    policy = load_policy(result.run_dir)
    rewards, lengths = evaluate_policy(policy, Monitor(gym.make("Pendulum-v1")),
                                       n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [200, 200] and all(-2000 < r < 0 for r in rewards)


def test_reinforce_on_the_torch_cartpole_updates(tmp_path, monkeypatch):
    agent = ReinforceConfig(hidden_sizes=[16], batch_steps=200, value_updates=2)
    result, built = train(tmp_path, monkeypatch, "pathwise/CartPole-v1", agent, "score",
                          total_steps=1600, num_envs=8)
    assert any(not torch.equal(p, built["init"][n]) for n, p in
               built["agent"].policy.named_parameters())
    updates = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "losses/actor" in r]
    assert updates and all(math.isfinite(r["losses/actor"]) for r in updates)
    assert load_policy(result.run_dir).metadata["eval_env_id"] == "CartPole-v1"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_sac_trains_on_a_cuda_torch_env(tmp_path, monkeypatch):
    agent = SACConfig(hidden_sizes=[32], batch_size=64, learning_starts=256, buffer_size=10_000,
                      updates_per_step=1 / 64)
    result, built = train(tmp_path, monkeypatch, "pathwise/Pendulum-v1", agent, "pathwise",
                          total_steps=4096, num_envs=256, device="cuda")
    assert built["envs"].device.type == "cuda" and result.global_step == 4096
