"""train → eval → compare on a testbed, through `pathwise` in this process."""

from __future__ import annotations

import json
import re

import torch
from _cli import DISCRETE, records, run_cli, tiny

EVAL_KEYS = {"time", "policy", "policy_step", "env", "deterministic", "seed", "device",
             "episodes", "return_mean", "return_std", "length_mean", "returns", "lengths"}


def eval_records(run_dir) -> list[dict]:
    path = run_dir / "evals.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_train_leaves_the_run_directory_of_the_design(discrete_run):
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "policy.pt"):
        assert (discrete_run / name).is_file(), name
    assert not (discrete_run / "wandb").exists()  # wandb.mode=disabled
    rows = records(discrete_run)
    assert all("global_step" in r and "time" in r for r in rows)
    assert rows[-1]["global_step"] == 100
    assert any("losses/critic" in r for r in rows)  # updates ran
    assert any("eval/return_mean" in r for r in rows)
    checkpoint = torch.load(discrete_run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["global_step"] == 100


def test_train_prints_a_summary_and_uses_the_default_run_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--no-progress", *tiny(total_steps=40,
                                                                      eval_every=0))
    assert code == 0, err
    run_dir = next((tmp_path / "runs").glob("pathwise-DiscreteBandit-v0/sac-pathwise/s0-*"))
    assert re.fullmatch(r"s0-\d{8}-\d{6}", run_dir.name)
    assert "final eval" in out and f"pathwise eval {run_dir.relative_to(tmp_path)}" in out
    assert "preset sac/pathwise-DiscreteBandit-v0" in err


def test_an_existing_run_dir_is_never_overwritten(discrete_run, capsys):
    before = (discrete_run / "metrics.jsonl").read_bytes()
    code, _, err = run_cli(capsys, "train", *tiny(), f"run_dir={discrete_run}")
    assert code == 2
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert (discrete_run / "metrics.jsonl").read_bytes() == before


def test_eval_json_prints_its_record_alone_and_appends_it_to_evals_jsonl(discrete_run, capsys):
    before = eval_records(discrete_run)
    code, out, _ = run_cli(capsys, "eval", discrete_run, "--episodes", "4", "--json")
    assert code == 0
    record = json.loads(out)
    assert set(record) == EVAL_KEYS
    assert record["episodes"] == len(record["returns"]) == len(record["lengths"]) == 4
    assert record["policy"] == str(discrete_run / "policy.pt") and record["policy_step"] == 100
    assert (record["env"], record["deterministic"], record["seed"]) == (DISCRETE, True, 0)
    assert eval_records(discrete_run) == before + [record]


def test_every_evaluation_is_kept_and_says_what_was_evaluated(discrete_run, capsys):
    """A 3-episode stochastic evaluation no longer replaces a 10-episode deterministic one."""
    before = eval_records(discrete_run)
    assert run_cli(capsys, "eval", discrete_run, "--episodes", "10")[0] == 0
    code, out, _ = run_cli(capsys, "eval", discrete_run, "--episodes", "3", "--stochastic",
                           "--seed", "5")
    assert code == 0 and f"recorded in {discrete_run / 'evals.jsonl'}" in out
    kept = eval_records(discrete_run)[len(before):]
    assert [(r["episodes"], r["deterministic"], r["seed"]) for r in kept] == \
        [(10, True, 0), (3, False, 5)]
    assert not (discrete_run / "wandb").exists()  # no wandb run unless --wandb


def test_eval_of_a_policy_file_prints_mean_std_and_episodes(discrete_run, capsys):
    code, out, _ = run_cli(capsys, "eval", discrete_run / "policy.pt", "--episodes", "2",
                           "--stochastic", "--seed", "7")
    assert code == 0
    assert re.search(r"return -?\d+\.\d+ ± \d+\.\d+", out)
    assert "2 stochastic episodes, seed 7" in out and "(step 100)" in out


def test_eval_refuses_an_env_the_policy_does_not_fit(discrete_run, capsys):
    code, _, err = run_cli(capsys, "eval", discrete_run, "--env", "CartPole-v1")
    assert code == 2
    assert "does not fit CartPole-v1" in err and len(err.strip().splitlines()) == 1


def test_multirun_puts_one_run_dir_per_job_under_the_sweep_dir(sweep_dir):
    from omegaconf import OmegaConf

    seeds = sorted(OmegaConf.load(p).seed for p in sweep_dir.glob("*/config.yaml"))
    assert seeds == [0, 1]
    assert all((p / "policy.pt").is_file() for p in sweep_dir.iterdir() if p.is_dir())


def test_compare_groups_seeds_and_writes_figures_and_report(sweep_dir, discrete_run,
                                                            tmp_path, capsys):
    """The sweep's two seeds are one group; the lone run, evaluated every 50 steps instead
    of 25, is another (never pooled with them)."""
    out_dir = tmp_path / "cmp"
    code, out, err = run_cli(capsys, "compare", sweep_dir, discrete_run, "--out", out_dir,
                             "--json")
    assert code == 0, err
    rows = {row["variant"]: row for row in json.loads(out)}
    assert set(rows) == {"eval_every=25", "eval_every=50"}
    row = rows["eval_every=25"]
    assert (row["env"], row["agent"], row["estimator"]) == (DISCRETE, "sac", "pathwise")
    assert row["runs"] == 2 and sorted(row["seeds"]) == [0, 1]
    assert rows["eval_every=50"]["runs"] == 1
    for stat in ("mean", "iqm"):
        low, high = row[f"{stat}_ci"]
        assert low <= row[stat] <= high
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert any(n.endswith("_steps.png") for n in pngs) and any(n.endswith("_time.png")
                                                               for n in pngs)
    report = (out_dir / "report.md").read_text()
    assert "IQM" in report and "sac" in report and ".png" in report


def test_compare_table_and_other_metric(sweep_dir, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "compare", sweep_dir, "--out", tmp_path / "c",
                           "--metric", "charts/episodic_return")
    assert code == 0
    assert "IQM [95% CI]" in out and DISCRETE in out


def test_resume_is_refused_for_a_finished_run(discrete_run, capsys):
    code, _, err = run_cli(capsys, "train", f"resume={discrete_run}")
    assert code == 2 and "raise total_steps" in err



def test_eval_of_a_corrupt_or_foreign_file_is_one_line_exit_2(tmp_path, capsys):
    truncated = tmp_path / "policy.pt"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = run_cli(capsys, "eval", truncated)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(truncated) in err and "corrupt or truncated" in err
    foreign = tmp_path / "weights.pt"
    torch.save({"some": torch.zeros(2)}, foreign)
    code, _, err = run_cli(capsys, "eval", foreign)
    assert code == 2 and "not a pathwise-policy file" in err


def test_eval_of_an_unfinished_run_points_at_resume(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    code, _, err = run_cli(capsys, "eval", tmp_path)
    assert code == 2 and f"pathwise train resume={tmp_path}" in err


def test_eval_of_best_pt_records_which_policy_and_step_it_evaluated(discrete_run, capsys):
    best = discrete_run / "checkpoints" / "best.pt"
    assert best.is_file()
    code, out, _ = run_cli(capsys, "eval", best, "--episodes", "3", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["policy"] == str(best)
    assert record["policy_step"] == torch.load(best, weights_only=True)["metadata"]["global_step"]
    assert eval_records(discrete_run)[-1] == record  # in the run's own record


def test_eval_refuses_an_env_whose_action_bounds_differ_from_the_policy(tmp_path, capsys):
    """Same shapes (3-dim obs, one action) but the policy acts in [-1, 1] and Pendulum in
    [-2, 2]: evaluating it there would measure a policy that never uses half its range."""
    from pathwise.policies.policy import Policy
    from pathwise.training.checkpoint import save_policy

    path = tmp_path / "policy.pt"
    save_policy(Policy(3, 1, False, hidden_sizes=[8]), path)
    code, _, err = run_cli(capsys, "eval", path, "--env", "Pendulum-v1", "--episodes", "1")
    assert code == 2
    assert "does not fit Pendulum-v1" in err and "[-2.0]" in err
    assert len(err.strip().splitlines()) == 1
    save_policy(Policy(3, 1, False, hidden_sizes=[8], action_low=[-2.0], action_high=[2.0]),
                path)
    assert run_cli(capsys, "eval", path, "--env", "Pendulum-v1", "--episodes", "1")[0] == 0
