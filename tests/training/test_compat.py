"""Run dirs, checkpoints and policies written by pathwise 0.1 (the bare-`agents` layout,
tests/fixtures/v0.1-runs, made with `pathwise train` at commit 01e1d81) still load, evaluate,
resume and diagnose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _cli import run_cli

from pathwise import load_policy
from pathwise.training.checkpoint import load_checkpoint
from pathwise.training.tracking import read_metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1-runs"


@pytest.fixture
def old_run(tmp_path):
    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target
    return copy


@pytest.mark.parametrize("name,env", [("pendulum", "Pendulum-v1"),
                                      ("cartpole-reinforce", "CartPole-v1")])
def test_an_old_policy_loads_and_evaluates(old_run, capsys, name, env):
    run = old_run(name)
    policy = load_policy(run / "policy.pt")
    assert policy.metadata["env_id"] == env
    code, out, err = run_cli(capsys, "eval", run, "--episodes", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["episodes"] == 2


def test_an_old_sac_run_resumes_and_keeps_its_curve(old_run, capsys):
    run = old_run("pendulum")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] == 400
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run}", "total_steps=600")
    assert code == 0, err
    steps = [r["global_step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == sorted(steps) and steps[-1] == 600
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] == 600


def test_an_old_reinforce_checkpoint_resumes_and_diagnoses(old_run, capsys):
    run = old_run("cartpole-reinforce")
    code, out, err = run_cli(capsys, "diagnose", run, "--episodes", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["agent"] == "reinforce"
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run}", "total_steps=800")
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["global_step"] >= 800
