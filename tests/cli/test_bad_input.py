"""Files a user points the CLI at that cannot be used: one line, exit 2, nothing run from them.
(Bad overrides and envs: test_config.py.)"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from _cli import CONTINUOUS, run_cli, tiny

from pathwise.training.checkpoint import atomic_save, safe_load


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_eval_of_a_missing_file_or_directory(tmp_path, capsys):
    for target in (tmp_path / "no-run", tmp_path / "no-policy.pt"):
        code, _, err = run_cli(capsys, "eval", target)
        assert code == 2
        assert one_error_line(err) == (f"pathwise eval: error: {target}: no such run directory "
                                       f"or policy file")


def test_a_policy_file_carrying_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "must-never-exist"
    policy = tmp_path / "policy.pt"
    torch.save({"format": "pathwise-policy", "version": 1, "spec": Payload(marker)}, policy)
    code, _, err = run_cli(capsys, "eval", policy)
    assert code == 2 and f"{policy}: refused to load" in one_error_line(err)
    assert not marker.exists()


def test_eval_refuses_a_policy_whose_actions_do_not_fit_the_env(discrete_run, capsys):
    # Same 1-dim observations, but Discrete(3) actions against a Box(1,) env.
    code, _, err = run_cli(capsys, "eval", discrete_run, "--env", CONTINUOUS)
    assert code == 2
    assert "acts in Discrete(3); the env has 1-dim observations and Box(1,) actions" in \
        one_error_line(err)


def broken_run(tmp_path, discrete_run, name: str):
    """A copy of a finished run whose checkpoint the test replaces, with total_steps raised
    so that resuming it is allowed."""
    run = tmp_path / name
    shutil.copytree(discrete_run, run)
    return run, run / "checkpoints" / "last.pt"


def test_resume_from_a_bad_checkpoint_is_one_line_and_runs_nothing(tmp_path, discrete_run,
                                                                   capsys):
    good = safe_load(discrete_run / "checkpoints" / "last.pt", "pathwise-checkpoint")
    marker = tmp_path / "must-never-exist"

    def truncated(path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])

    def foreign(path):
        torch.save({"model": torch.zeros(3)}, path)

    def malicious(path):
        torch.save({**good, "agent": Payload(marker)}, path)

    def misfit(path):  # ours, same config, but its networks have another shape
        agent = dict(good["agent"])
        agent["policy"] = {k: torch.zeros(7, *v.shape[1:]) for k, v in agent["policy"].items()}
        atomic_save({**good, "agent": agent}, path)

    for make, message in [(truncated, "corrupt or truncated file"),
                          (foreign, "not a pathwise-checkpoint file"),
                          (malicious, "refused to load"),
                          (misfit, "does not fit this run")]:
        run, path = broken_run(tmp_path, discrete_run, make.__name__)
        make(path)
        before = (run / "metrics.jsonl").read_bytes()
        code, _, err = run_cli(capsys, "train", f"resume={run}", "total_steps=200")
        assert code == 2, err
        line = one_error_line(err)
        assert f"{path}: {message}" in line, line
        assert (run / "metrics.jsonl").read_bytes() == before  # nothing trained or truncated
    assert not marker.exists()


def test_an_unwritable_run_dir_fails_before_training_starts(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    run_dir = blocker / "run"
    code, _, err = run_cli(capsys, "train", "--no-progress", *tiny(), f"run_dir={run_dir}")
    assert code == 2
    # One line: the run's header, printed at its first step, never came.
    assert f"cannot write to run_dir {run_dir}" in one_error_line(err)


def test_hydra_full_error_lets_the_traceback_through(tmp_path, monkeypatch, capsys):
    from pathwise.cli import main
    from pathwise.errors import UsageError

    assert main(["eval", str(tmp_path / "missing")]) == 2  # one line, as above
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(UsageError, match="no such run directory"):
        main(["eval", str(tmp_path / "missing")])  # the exception itself: a full traceback
