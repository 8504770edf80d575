"""No lost or mixed-up work: a failure after training started keeps what was trained and says
how to finish; a user env without `render_mode`, `module:Id` ids, safe run-dir names; runs
that cannot learn are refused; the small ones (seed, unqualified keys, the wrong file, the
umask, best.pt after a resume)."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest
import torch
from _cli import run_cli, tiny

import pathwise.training.loop as loop
from pathwise import load_policy
from pathwise.errors import CheckpointError
from pathwise.training.checkpoint import load_checkpoint, safe_load
from pathwise.training.evaluation import EvalResult

USER_ENV = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MyTarget(gym.Env):
    """Reach 0.5 in one step. Its __init__ takes no render_mode: legal in Gymnasium."""

    def __init__(self):
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), -float((action[0] - 0.5) ** 2), True, False, {}


gym.register("MyTarget-v0", entry_point=MyTarget)
'''


def one_error_line(err: str) -> bool:
    """The header (training had started), then the error on one line."""
    lines = err.strip().splitlines()
    return len(lines) == 2 and lines[1].startswith("pathwise train: error: ")


@pytest.fixture
def user_env(tmp_path, monkeypatch):
    module = tmp_path / "modules" / "my_user_env.py"
    module.parent.mkdir()
    module.write_text(textwrap.dedent(USER_ENV))
    monkeypatch.syspath_prepend(str(module.parent))
    return "my_user_env:MyTarget-v0"


def test_a_user_env_without_render_mode_trains_evaluates_and_gets_a_safe_run_dir(
        user_env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--no-progress",
                             *tiny(env=user_env, total_steps=60))
    assert code == 0, err
    [run_dir] = list((tmp_path / "runs").glob("*/sac-pathwise/s0-*"))
    assert run_dir.parent.parent.name == "my_user_env-MyTarget-v0"  # no ':' on any filesystem
    assert (run_dir / "policy.pt").is_file() and "final eval" in out
    assert run_cli(capsys, "eval", run_dir, "--episodes", "2")[0] == 0


def test_a_failing_final_evaluation_keeps_the_checkpoint_and_the_policy(tmp_path, monkeypatch,
                                                                        capsys):
    def broken(*args, **kwargs):
        raise TypeError("__init__() got an unexpected keyword argument 'render_mode'")

    monkeypatch.setattr(loop, "evaluate", broken)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--no-progress", *tiny(eval_every=0),
                           f"run_dir={run_dir}")
    assert code == 1 and one_error_line(err)
    assert "final evaluation failed" in err and f"pathwise eval {run_dir}" in err
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["global_step"] == 100
    assert load_policy(run_dir).metadata["global_step"] == 100


def test_a_failure_mid_run_saves_what_was_trained_and_says_how_to_go_on(tmp_path, monkeypatch,
                                                                       capsys):
    """A full disk under metrics.jsonl at step 60 (no checkpoint since step 50)."""
    original = loop.JsonlWriter.log

    def log(self, record):
        if record["global_step"] >= 60:
            raise OSError(28, "No space left on device")
        original(self, record)

    monkeypatch.setattr(loop.JsonlWriter, "log", log)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--no-progress", *tiny(), f"run_dir={run_dir}")
    assert code == 1 and one_error_line(err)
    assert "No space left on device" in err and f"pathwise train resume={run_dir}" in err
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")["global_step"]
    assert saved == 60 and load_policy(run_dir).metadata["global_step"] == 60
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}")
    assert code == 0, err


def test_a_run_that_cannot_learn_is_refused_naming_the_value_to_change(capsys):
    code, _, err = run_cli(capsys, "train", "env=Hopper-v5", "total_steps=2000")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "agent.learning_starts=10000" in err and "no gradient update" in err


@pytest.mark.parametrize("args,expected", [
    (["seed=-1"], "seed must be >= 0"),
    (["lr=0.1"], "did you mean agent.lr?"),
])
def test_small_mistakes_are_one_line(capsys, args, expected):
    code, _, err = run_cli(capsys, "train", *args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_the_wrong_kind_of_file_names_the_right_one(discrete_run, capsys):
    with pytest.raises(CheckpointError, match="policy.pt or checkpoints/best.pt"):
        load_policy(discrete_run / "checkpoints" / "last.pt")
    code, _, err = run_cli(capsys, "diagnose", discrete_run / "policy.pt")
    assert code == 2 and "checkpoints/last.pt" in err


def test_eval_on_cuda_without_a_gpu_names_the_flag(discrete_run, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_cli(capsys, "eval", discrete_run, "--device", "cuda")
    assert code == 2 and "use --device cpu" in err


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_follow_the_umask(tmp_path, capsys, umask):
    previous = os.umask(umask)
    try:
        run_dir = tmp_path / "run"
        assert run_cli(capsys, "train", "--no-progress", *tiny(total_steps=40, eval_every=0),
                       f"run_dir={run_dir}")[0] == 0
    finally:
        os.umask(previous)
    for name in ("policy.pt", "checkpoints/last.pt", "config.yaml", "metrics.jsonl"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o666 & ~umask, name


class Crash(BaseException):
    """The process dying (no handler runs)."""


def test_best_pt_after_a_resume_belongs_to_the_kept_timeline(tmp_path, monkeypatch, capsys):
    """Evaluations return 1, 2, 5 at steps 25, 50, 75; the run dies at 80 after the checkpoint
    of step 50: best.pt (from step 75) belongs to a timeline the resume discards."""
    scripted = iter([1.0, 2.0, 5.0, 0.0, 0.0, 0.0])

    def fake_evaluate(policy, env_id, episodes, seed, **kwargs):
        ret = next(scripted)
        return EvalResult(episodes, ret, 0.0, 1.0, [ret] * episodes, [1] * episodes)

    def die(self, event, **data):
        if event == "step" and self.global_step >= 80:
            raise Crash

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)
    monkeypatch.setattr(loop.Run, "report", die)
    run_dir = tmp_path / "run"
    overrides = tiny(eval_every=25, checkpoint_every=50)
    with pytest.raises(Crash):
        run_cli(capsys, "train", "--no-progress", *overrides, f"run_dir={run_dir}")
    best = run_dir / "checkpoints" / "best.pt"
    assert safe_load(best, "pathwise-policy")["metadata"]["global_step"] == 75
    monkeypatch.setattr(loop.Run, "report", lambda self, event, **data: None)
    assert run_cli(capsys, "train", "--no-progress", f"resume={run_dir}")[0] == 0
    saved = safe_load(best, "pathwise-policy")
    assert saved["metadata"]["global_step"] == 50 and saved["metadata"]["eval_return"] == 2.0
