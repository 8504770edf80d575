"""The Python API (pathwise.api): Stable-Baselines3's shape on the CLI's code path."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from _cli import DISCRETE, run_cli, tiny

from pathwise import SAC, Reinforce, load_policy
from pathwise.errors import ConfigError, UsageError
from pathwise.training.checkpoint import load_checkpoint
from pathwise.training.compose import compose_train
from pathwise.training.config import as_train_config
from pathwise.training.tracking import read_metrics

TINY = dict(hidden_sizes=[16], learning_starts=32, batch_size=32, buffer_size=1000,
            eval_every=50, eval_episodes=3, log_every=25, checkpoint_every=50,
            torch_threads=1, wandb="disabled")


def without_run_dir(cfg) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("run_dir", "resume")}


def test_a_model_is_configured_as_the_cli_configures_the_same_run():
    """Presets included: from Python, CartPole exact got the defaults and scored 12.7 where
    the CLI, with the preset, scored 340.1."""
    model = SAC("CartPole-v1", estimator="exact", seed=3)
    cli, preset = compose_train(["env=CartPole-v1", "estimator=exact", "seed=3"])
    assert preset == model.preset == "sac/CartPole-v1"
    assert without_run_dir(model.config) == without_run_dir(as_train_config(cli))
    assert Reinforce("CartPole-v1").config.estimator.name == "score"


def test_hyperparameters_go_by_their_config_names(tmp_path):
    model = SAC("Pendulum-v1", learning_starts=300, batch_size=64, num_envs=2, wandb="disabled",
                hidden_sizes=[32, 32], diagnostics__every=100)
    cfg = model.config
    assert (cfg.agent.learning_starts, cfg.agent.batch_size, cfg.num_envs) == (300, 64, 2)
    assert (cfg.wandb.mode, cfg.agent.hidden_sizes, cfg.diagnostics.every) == \
        ("disabled", [32, 32], 100)
    with pytest.raises(ConfigError, match="did you mean agent.batch_size"):
        SAC("Pendulum-v1", batch_sise=64)
    with pytest.raises(ConfigError, match="invalid value for agent.lr"):
        SAC("Pendulum-v1", lr="fast")


def test_the_env_argument_takes_sb3s_policy_name_and_gymnasium_envs():
    assert SAC("MlpPolicy", "Pendulum-v1").env == "Pendulum-v1"
    assert SAC(gym.make("CartPole-v1")).env == "CartPole-v1"
    with pytest.raises(UsageError, match="register it"):
        SAC(gym.make("CartPole-v1").unwrapped.__class__())
    with pytest.raises(UsageError, match="env id or a Gymnasium env"):
        SAC()


def test_learn_trains_the_run_the_cli_trains(tmp_path, capsys):
    """Same settings, same seed: the same policy, bit for bit (CPU)."""
    model = SAC(DISCRETE, seed=0, run_dir=tmp_path / "api", **TINY).learn(100)
    assert model.num_timesteps == 100 and model.result.final_eval is not None
    assert run_cli(capsys, "train", "--no-progress", *tiny(),
                   f"run_dir={tmp_path / 'cli'}")[0] == 0
    ours, theirs = load_policy(tmp_path / "api"), load_policy(tmp_path / "cli")
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[name]), name


def test_a_second_learn_continues_the_same_run(tmp_path):
    model = SAC(DISCRETE, run_dir=tmp_path / "run", **TINY).learn(100)
    model.learn(60)
    assert model.num_timesteps == 160
    steps = [r["global_step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert steps == sorted(steps) and steps[-1] == 160


def test_save_and_load_give_back_the_model_and_learning_goes_on_elsewhere(tmp_path):
    model = SAC(DISCRETE, run_dir=tmp_path / "run", **TINY).learn(100)
    obs = np.zeros((5, 1), dtype=np.float32)
    path = model.save(tmp_path / "model.pt")
    loaded = SAC.load(path, run_dir=tmp_path / "more")
    assert loaded.num_timesteps == 100
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    source = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    loaded.learn(50)
    assert loaded.num_timesteps == 150
    assert load_checkpoint(tmp_path / "more" / "checkpoints" / "last.pt")["global_step"] == 150
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == source  # never the source's
    with pytest.raises(UsageError, match="Reinforce.load|SAC.load"):
        Reinforce.load(path)


def test_a_callback_hears_the_events_and_can_stop_the_run(tmp_path):
    events = []

    def callback(step, info):
        events.append(info["event"])
        return step < 60

    model = SAC(DISCRETE, run_dir=tmp_path / "run", **TINY).learn(100, callback=callback)
    assert model.num_timesteps == 60 and model.result.interrupted
    assert {"step", "log", "eval"} <= set(events)


def test_progress_bar_prints_progress_lines_off_a_terminal(tmp_path, capsys):
    SAC(DISCRETE, run_dir=tmp_path / "run", **TINY).learn(100, progress_bar=True)
    err = capsys.readouterr().err
    assert "step 100/100 (100%)" in err and "eval return" in err


def test_reinforce_learns_saves_and_loads(tmp_path):
    model = Reinforce(DISCRETE, run_dir=tmp_path / "run", batch_steps=20, hidden_sizes=[16],
                      eval_every=0, wandb="disabled").learn(80)
    assert model.num_timesteps >= 80
    loaded = Reinforce.load(model.save(tmp_path / "r.pt"))
    obs = np.zeros((3, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])


def test_shac_and_apg_from_python_on_a_torch_env(tmp_path):
    from pathwise import APG, SHAC

    for cls in (APG, SHAC):
        model = cls("pathwise/PointMass-v0", seed=0, num_envs=8, horizon=8, eval_every=0,
                    eval_episodes=2, wandb="disabled", run_dir=tmp_path / cls.__name__)
        before = model.predict(np.zeros((2, 4), dtype=np.float32))[0]
        model.learn(8 * 8 * 4)
        assert model.num_timesteps == 256
        after = model.predict(np.zeros((2, 4), dtype=np.float32))[0]
        assert not np.array_equal(before, after)
    with pytest.raises(ConfigError, match="pathwise/Pendulum-v1"):
        SHAC("Pendulum-v1").learn(1000)
