"""wandb: an offline run read back from its own files; online without credentials."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from _cli import DISCRETE, run_cli, tiny, train_quietly


def inspect_records(run_dir) -> list[dict]:
    """Every record of a wandb run's transaction log, through ``wandb leet inspect --json``."""
    wandb_exe = shutil.which("wandb")
    if wandb_exe is None:
        pytest.skip("no wandb executable on PATH")
    out = subprocess.run([wandb_exe, "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def of_type(records, kind):
    return [r[kind] for r in records if r.get("type") == kind]


def test_offline_run_holds_group_job_type_config_metrics_and_model(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train_quietly(*tiny(**{"wandb.mode": "offline"}), f"run_dir={run_dir}") == 0
    [wandb_run] = list((run_dir / "wandb").glob("offline-run-*"))
    records = inspect_records(wandb_run)

    [run] = of_type(records, "run")
    assert run["run_group"] == DISCRETE
    assert run["job_type"] == "sac-pathwise"
    assert set(run["tags"]) == {"sac", "pathwise", DISCRETE}
    config = run["config"]["update"]
    assert config["env"] == DISCRETE and config["total_steps"] == 100
    assert config["agent"]["name"] == "sac" and config["agent"]["hidden_sizes"] == [16]
    assert config["estimator"]["name"] == "pathwise"

    assert any(m.get("glob_name") == "*" and m.get("step_metric") == "global_step"
               for m in of_type(records, "metric"))
    history = [h["item"] for h in of_type(records, "history")]
    assert all("global_step" in item for item in history)
    assert any("charts/episodic_return" in item for item in history)
    assert any("losses/critic" in item for item in history)
    assert max(item["eval/return_mean"] for item in history if "eval/return_mean" in item) \
        is not None

    [artifact] = of_type(records, "artifact")
    assert artifact["type"] == "model"
    metadata = json.loads(artifact["metadata"]) if isinstance(artifact["metadata"], str) \
        else artifact["metadata"]
    assert metadata["env"] == DISCRETE and metadata["agent"] == "sac"
    assert metadata["estimator"] == "pathwise" and "final_return" in metadata

    # `pathwise eval` adds no wandb run unless asked; --wandb offline logs a job_type=eval
    # run in the same group.
    assert run_cli(capsys, "eval", run_dir, "--episodes", "2")[0] == 0
    assert list((run_dir / "wandb").glob("offline-run-*")) == [wandb_run]
    code, _, _ = run_cli(capsys, "eval", run_dir, "--episodes", "2", "--wandb", "offline")
    assert code == 0
    [eval_run] = [p for p in (run_dir / "wandb").glob("offline-run-*") if p != wandb_run]
    [run] = of_type(inspect_records(eval_run), "run")
    assert run["run_group"] == DISCRETE and run["job_type"] == "eval"


def test_online_without_credentials_stops_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    from pathwise.training.tracking import wandb_credentials_missing

    if not wandb_credentials_missing():
        pytest.skip("wandb still finds credentials on this machine")
    code, _, err = run_cli(capsys, "train", *tiny(**{"wandb.mode": "online"}),
                           f"run_dir={tmp_path / 'run'}")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "wandb login" in err and "wandb.mode=offline" in err
    assert not (tmp_path / "run").exists()
