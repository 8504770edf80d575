"""Ctrl-C saves a checkpoint and exits cleanly; resume=<run dir> continues from it."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from _cli import records, run_cli, tiny

from pathwise.cli import progress as cli


def interrupt_at(step: int, monkeypatch) -> None:
    """Deliver SIGINT (Ctrl-C) to this process once training reaches ``step``."""
    original = cli.Progress.__call__

    def hook(self, global_step, info):
        original(self, global_step, info)
        if global_step == step and info["event"] == "step":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli.Progress, "__call__", hook)


def test_ctrl_c_checkpoints_and_resume_continues_from_the_saved_step(tmp_path, monkeypatch,
                                                                    capsys):
    run_dir = tmp_path / "run"
    interrupt_at(60, monkeypatch)
    code, out, err = run_cli(capsys, "train", "--no-progress", *tiny(), f"run_dir={run_dir}")
    assert code == 130, err
    assert f"pathwise train resume={run_dir}" in out
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["global_step"] == 60
    assert (run_dir / "policy.pt").is_file()  # an interrupted run can still be evaluated
    assert max(r["global_step"] for r in records(run_dir)) == 60
    monkeypatch.undo()

    code, out, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}")
    assert code == 0, err
    assert "resumed" in err
    steps = [r["global_step"] for r in records(run_dir)]
    assert steps == sorted(steps) and steps[-1] == 100  # one curve, appended in order
    times = [r["time"] for r in records(run_dir)]
    assert times == sorted(times)  # the clock continues too
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["global_step"] == 100

    # Extending a finished run: raise total_steps.
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}",
                           "total_steps=120")
    assert code == 0, err
    assert records(run_dir)[-1]["global_step"] == 120


@pytest.mark.parametrize("override", ["env=CartPole-v1", "action_bins=5"])
def test_resume_refuses_to_change_what_the_run_is(tmp_path, capsys, discrete_run, override):
    # action_bins shapes the policy's output layer: a changed value would otherwise reach
    # load_state_dict as a size mismatch.
    code, _, err = run_cli(capsys, "train", f"resume={discrete_run}", override,
                           "total_steps=500")
    key = override.split("=")[0]
    assert code == 2 and f"cannot change {key} when resuming" in err


def test_resume_of_a_directory_without_checkpoint(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("env: Pendulum-v1\n")
    code, _, err = run_cli(capsys, "train", f"resume={tmp_path}")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_checkpoint_from_before_action_bins_existed_still_resumes(tmp_path, capsys,
                                                                    discrete_run):
    # Runs saved before the action_bins key was added lack it in both config files; they
    # trained without bins (its default, 0), so resuming them is not a change.
    import shutil

    from omegaconf import OmegaConf

    run_dir = tmp_path / "old"
    shutil.copytree(discrete_run, run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=False)
    del checkpoint["config"]["action_bins"]
    torch.save(checkpoint, last)
    config = OmegaConf.load(run_dir / "config.yaml")
    del config["action_bins"]
    OmegaConf.save(config, run_dir / "config.yaml")
    steps = checkpoint["global_step"]
    # Saying the value it had, action_bins=0, is not a change either.
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}",
                           f"total_steps={steps + 20}", "action_bins=0")
    assert code == 0, err
    assert torch.load(last, weights_only=False)["global_step"] == steps + 20
