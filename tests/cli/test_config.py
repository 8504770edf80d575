"""The Hydra config tree: defaults, presets, the schema, override names, --help."""

from __future__ import annotations

import pytest
from _cli import DISCRETE, run_cli

from pathwise.agents.fields import describe
from pathwise.errors import UsageError
from pathwise.training.compose import (
    compose_train,
    env_file_key,
    field_rows,
    preset_for,
    presets,
)
from pathwise.training.config import TrainConfig, as_train_config


def composed(*overrides: str):
    cfg, preset = compose_train(list(overrides))
    return as_train_config(cfg), preset


def test_no_arguments_is_sac_pathwise_on_pendulum_for_20k_steps():
    cfg, preset = composed()
    assert (cfg.agent.name, cfg.estimator.name, cfg.env) == ("sac", "pathwise", "Pendulum-v1")
    assert (cfg.total_steps, cfg.device, cfg.wandb.mode) == (20_000, "auto", "offline")
    assert preset == "sac/Pendulum-v1"
    assert cfg.agent.learning_starts == 1000 and cfg.agent.lr == pytest.approx(1e-3)
    assert cfg.estimator.num_samples == 1


def test_estimator_group_values():
    assert composed("estimator=score")[0].estimator.num_samples == 4
    assert composed("estimator=score")[0].estimator.baseline == "mean"
    assert composed("estimator=exact", "env=CartPole-v1")[0].estimator.name == "exact"


def test_reinforce_trains_with_the_score_estimator_unless_told_otherwise():
    pytest.importorskip("pathwise.agents.reinforce")
    cfg, preset = composed("agent=reinforce", "env=CartPole-v1")
    assert cfg.estimator.name == "score" and preset == "reinforce/CartPole-v1"
    assert cfg.agent.lr == pytest.approx(1e-3) and cfg.agent.batch_steps == 2000


@pytest.mark.parametrize("agent,env", [(a, e) for a, envs in presets().items() for e in envs])
def test_every_preset_composes_and_validates(agent, env):
    if agent == "reinforce":
        pytest.importorskip("pathwise.agents.reinforce")
    cfg, _ = compose_train([f"agent={agent}", f"preset={agent}/{env}"])
    as_train_config(cfg)


def test_presets_exist_for_the_benchmark_envs():
    for env in ("Pendulum-v1", "LunarLanderContinuous-v3", "HalfCheetah-v5", "Hopper-v5",
                "CartPole-v1", "LunarLander-v3", DISCRETE, "pathwise/ContinuousBandit-v0"):
        assert preset_for("sac", env) == f"sac/{env_file_key(env)}"


def test_env_ids_map_to_file_names():
    assert env_file_key("pathwise/DiscreteBandit-v0") == "pathwise-DiscreteBandit-v0"
    assert env_file_key("pathwise.envs.testbeds:pathwise/DiscreteBandit-v0") == \
        "pathwise-DiscreteBandit-v0"


def test_any_env_without_a_preset_uses_the_agent_defaults():
    cfg, preset = composed("env=Acrobot-v1")
    assert preset is None and cfg.env == "Acrobot-v1"
    assert cfg.agent.learning_starts == 5000  # SACConfig's own default


def test_command_line_overrides_win_over_the_preset():
    cfg, preset = composed("agent.learning_starts=300", "agent.lr=0.01")
    assert preset == "sac/Pendulum-v1"
    assert cfg.agent.learning_starts == 300 and cfg.agent.lr == pytest.approx(0.01)


def test_tilde_preset_trains_on_defaults_alone():
    cfg, preset = composed("~preset")
    assert preset is None and cfg.agent.learning_starts == 5000


def test_the_override_names_of_the_design():
    cfg, _ = composed(
        "agent=sac", "env=CartPole-v1", "estimator=exact", "seed=3", "total_steps=1234",
        "num_envs=2", "device=cpu", "run_dir=somewhere", "wandb.mode=disabled",
        "wandb.project=p", "agent.lr=0.002", "agent.gamma=0.9", "agent.batch_size=32",
        "agent.buffer_size=5000", "agent.learning_starts=100", "agent.tau=0.01",
        "agent.updates_per_step=0.5", "agent.hidden_sizes=[64,64]",
        "agent.temperature.start=2.0", "agent.temperature.end=0.1",
        "agent.temperature.decay=1e-4", "agent.hard=true")
    assert (cfg.seed, cfg.total_steps, cfg.num_envs, cfg.run_dir) == (3, 1234, 2, "somewhere")
    assert cfg.agent.hidden_sizes == [64, 64] and cfg.agent.hard is True
    assert cfg.agent.temperature.start == 2.0 and cfg.wandb.project == "p"


def test_resume_key_exists_and_points_at_a_run_dir(tmp_path):
    with pytest.raises(UsageError, match="no such run directory"):
        compose_train([f"resume={tmp_path / 'missing'}"])


@pytest.mark.parametrize("overrides,message", [
    (["agent.lerning_starts=5"], "unknown key 'agent.lerning_starts'; did you mean "
                                 "agent.learning_starts?"),
    (["total_step=5"], "did you mean total_steps?"),
    (["seed=abc"], "invalid value for seed: 'abc' is not an integer"),
    (["agent.lr=fast"], "invalid value for agent.lr"),
    (["agent.hidden_sizes=64"], "expected a list"),
    (["agent=ppo"], "unknown agent 'ppo'; valid:"),
    (["estimator=magic"], "unknown estimator 'magic'; valid: exact, gumbel_rao, pathwise, "
                            "reinmax, score, straight_through"),
    (["preset=sac/Nowhere-v0"], "no preset 'sac/Nowhere-v0'"),
    (["seed=[1"], "cannot parse"),
    (["CartPole-v1"], "overrides are key=value"),
    (["agent.lr=-1"], "agent.lr must be > 0"),
    (["agent.gamma=1.5"], "agent.gamma must be in [0, 1]"),
    (["agent.tau=0"], "agent.tau must be in (0, 1]"),
    (["wandb.mode=sometimes"], "wandb.mode must be offline, online or disabled"),
    (["agent.batch_size=5000"], "raise learning_starts"),
    (["agent.batch_size=0"], "agent.batch_size must be > 0"),
    (["agent.lr=0"], "agent.lr must be > 0"),
    (["agent=reinforce", "agent.lr=0"], "agent.lr must be > 0"),
    (["agent.temperature.start=0"], "agent.temperature start and end must be > 0"),
    (["agent.temperature.end=-1"], "agent.temperature start and end must be > 0"),
    (["agent.gamma=-0.1"], "agent.gamma must be in [0, 1]"),
    (["agent.tau=1.5"], "agent.tau must be in (0, 1]"),
    (["nan_policy=ignore"], "nan_policy must be stop or skip"),
    (["+surprise=1"], "unknown key 'surprise'"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
])
def test_config_errors_are_one_line_and_exit_2(overrides, message, capsys):
    code, out, err = run_cli(capsys, "train", *overrides)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pathwise train: error: ")
    assert message in lines[0]


def test_runtime_config_errors_are_one_line_and_exit_2(capsys, tmp_path):
    for overrides, message in [
        (["env=NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
        (["env=CartPole-v2"], "unknown env id 'CartPole-v2'; did you mean: CartPole-v1"),
        (["estimator=exact"], "estimator 'exact' needs discrete actions"),
        (["env=FrozenLake-v1"], "unsupported observation space Discrete(16)"),
        # Discrete-only settings on a Box env, and a Box-style entropy target on a Discrete one.
        (["agent.hard=true"], "Pendulum-v1: agent.hard applies to Discrete actions only"),
        (["agent.temperature.start=2"], "agent.temperature applies to Discrete actions only"),
        (["env=CartPole-v1", "agent.target_entropy=-1"],
         "agent.target_entropy=-1.0 is outside [0, log 2 = 0.693]"),
        # Estimator options that cannot apply are refused, not silently dropped.
        (["estimator=score", "estimator.num_samples=1"], "needs num_samples >= 2"),
        (["env=CartPole-v1", "estimator=exact", "estimator.num_samples=4"],
         "estimator.num_samples does not apply"),
    ]:
        code, _, err = run_cli(capsys, "train", *overrides, "wandb.mode=disabled",
                               f"run_dir={tmp_path / 'never'}")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "never").exists()


def test_print_config_shows_the_composed_config(capsys):
    code, out, _ = run_cli(capsys, "train", "--print-config", "env=CartPole-v1")
    assert code == 0
    # The preset's values (buffer_size 50000; the SAC default is 1e6) are in the printout.
    assert "# preset: sac/CartPole-v1" in out and "buffer_size: 50000" in out


def test_train_help_lists_every_field_with_its_description(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    rows = [row for _, section in field_rows() for row in section]
    assert {name for name, _, _ in describe(TrainConfig)} <= {name for name, _, _ in rows}
    for name, _, text in rows:
        assert name in out and text in out, name
    assert "agent=" in out and "estimator=" in out and "preset=" in out and "-m" in out
