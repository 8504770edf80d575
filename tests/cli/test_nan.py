"""NaN and Inf in training: nan_policy=stop ends the run with one line naming the step and the
loss, exit 1, and keeps the last good checkpoint; nan_policy=skip skips and counts."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from _cli import records, run_cli, tiny
from gymnasium import spaces

import pathwise.training.loop as runner
from pathwise.errors import TrainingError
from pathwise.training.checkpoint import safe_load


class NanRewardEnv(gym.Env):
    """Ten-step episodes of reward 1, until the env has taken ``nan_after`` steps: from then
    on every reward is NaN (a sensor gone bad)."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, nan_after: int = 70, render_mode=None):
        self.nan_after, self.steps, self.t = nan_after, 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        reward = float("nan") if self.steps > self.nan_after else 1.0
        return np.zeros(1, np.float32), reward, self.t >= 10, False, {}


NAN_ENV = "pathwise-test/NanReward-v0"
if NAN_ENV not in gym.registry:
    gym.register(NAN_ENV, entry_point=NanRewardEnv)


class StrictBoxEnv(gym.Env):
    """A one-step Box task that raises on a non-finite action, as many simulators do."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, render_mode=None):
        pass

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        if not np.all(np.isfinite(action)):
            raise ValueError(f"simulator error: action {action}")
        return np.zeros(1, np.float32), -float(action[0]) ** 2, True, False, {}


STRICT_ENV = "pathwise-test/StrictBox-v0"
if STRICT_ENV not in gym.registry:
    gym.register(STRICT_ENV, entry_point=StrictBoxEnv)


def all_finite(state) -> bool:
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    if isinstance(state, torch.Tensor) and state.is_floating_point():
        return bool(torch.isfinite(state).all())
    return True


def learned_state(checkpoint: dict) -> dict:
    """Networks, α and optimizer moments (the replay buffer may hold the NaN rewards)."""
    return {k: v for k, v in checkpoint["agent"].items() if k != "buffer"}


def test_a_nan_loss_stops_the_run_naming_step_and_loss_and_keeps_the_last_checkpoint(
        tmp_path, capsys):
    run_dir = tmp_path / "run"
    # Checkpoint at 50, NaN rewards from step 71, losses logged every 25 steps.
    code, _, err = run_cli(capsys, "train", "--no-progress",
                           *tiny(NAN_ENV, estimator="exact", eval_every=0), f"run_dir={run_dir}")
    assert code == 1
    lines = err.strip().splitlines()  # the run's header (training started), then the error
    assert len(lines) == 2 and lines[1].startswith("pathwise train: error: "), err
    assert "non-finite losses/critic=nan at step 75 (all finite at step 50)" in lines[1]
    assert "checkpoints/last.pt of step 50 is kept" in lines[1]
    checkpoint = safe_load(run_dir / "checkpoints" / "last.pt", "pathwise-checkpoint")
    assert checkpoint["global_step"] == 50 and all_finite(learned_state(checkpoint))
    assert not (run_dir / "policy.pt").exists()


def test_nan_policy_skip_skips_the_updates_and_counts_them(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--no-progress",
                           *tiny(NAN_ENV, estimator="exact", eval_every=0, nan_policy="skip"),
                           f"run_dir={run_dir}")
    assert code == 0, err
    skips = [r["charts/nan_skips"] for r in records(run_dir) if "charts/nan_skips" in r]
    assert skips[0] == 0 and skips[-1] > 0 and skips == sorted(skips)
    checkpoint = safe_load(run_dir / "checkpoints" / "last.pt", "pathwise-checkpoint")
    assert checkpoint["global_step"] == 100 and all_finite(learned_state(checkpoint))
    assert math.isfinite(checkpoint["agent"]["log_alpha"].item())


@pytest.mark.parametrize("nan_policy", ["stop", "skip"])
def test_a_nonfinite_parameter_stops_the_run_under_either_policy(tmp_path, monkeypatch,
                                                                 nan_policy):
    agents = []
    build = runner.build_agent
    monkeypatch.setattr(runner, "build_agent", lambda *a, **k: agents.append(build(*a, **k))
                        or agents[-1])

    def poison(step, info):
        if step == 60:
            with torch.no_grad():
                next(agents[0].critic.parameters()).fill_(float("inf"))

    from omegaconf import OmegaConf

    from pathwise.training.compose import compose_train

    cfg, _ = compose_train([*tiny(eval_every=0, nan_policy=nan_policy),
                            f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(TrainingError, match=r"non-finite (parameter critic\.|losses/)"
                                                   r".* at step 75 \(all finite at step 50\)"):
        runner.train(OmegaConf.to_container(cfg), progress=poison)
    assert safe_load(tmp_path / "run" / "checkpoints" / "last.pt",
                     "pathwise-checkpoint")["global_step"] == 50


def test_an_error_that_a_nonfinite_value_causes_is_reported_as_that_value(tmp_path,
                                                                        monkeypatch):
    agents = []
    build = runner.build_agent
    monkeypatch.setattr(runner, "build_agent", lambda *a, **k: agents.append(build(*a, **k))
                        or agents[-1])

    def poison(step, info):
        if step == 60:
            with torch.no_grad():
                next(agents[0].policy.parameters()).fill_(float("nan"))

    from omegaconf import OmegaConf

    from pathwise.training.compose import compose_train

    cfg, _ = compose_train([*tiny(STRICT_ENV, eval_every=0), f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(TrainingError, match=r"non-finite parameter policy\..* at step "
                                                   r"60 \(all finite at step 50\)") as info:
        runner.train(OmegaConf.to_container(cfg), progress=poison)
    assert "simulator error" in str(info.value.__context__)  # the error it explains
