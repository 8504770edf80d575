"""``action_bins`` and the discrete estimators from the command line: a binned run that
``pathwise eval`` and ``pathwise diagnose`` take back (bins reapplied from the run), and
settings that cannot work refused in one line with exit 2."""

from __future__ import annotations

import json

import pytest
from _cli import run_cli, tiny, train_quietly

from tests._multidiscrete import MULTI_BANDIT_ID


@pytest.fixture(scope="module")
def binned_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("binned") / "run"
    overrides = tiny("pathwise/Pendulum-v1", action_bins=5, estimator="reinmax",
                     eval_every=100, eval_episodes=1, checkpoint_every=100,
                     **{"diagnostics.every": 100, "diagnostics.samples": 4,
                        "diagnostics.batch_size": 8})
    assert train_quietly(*overrides, f"run_dir={run_dir}") == 0
    return run_dir


def test_eval_reapplies_the_runs_bins_on_gymnasiums_pendulum(binned_run, capsys):
    code, out, _ = run_cli(capsys, "eval", binned_run, "--episodes", "1", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["env"] == "Pendulum-v1"  # Gymnasium's Box env, not the torch port
    logged = [json.loads(line) for line in (binned_run / "metrics.jsonl").read_text()
              .splitlines()]
    final = [r["eval/return_mean"] for r in logged if "eval/return_mean" in r][-1]
    assert record["return_mean"] == pytest.approx(final, rel=1e-6)


def test_diagnose_rebuilds_the_binned_agent_and_measures_every_discrete_estimator(
        binned_run, capsys):
    code, out, _ = run_cli(capsys, "diagnose", binned_run, "--json", "--samples", "4")
    assert code == 0
    report = json.loads(out)
    assert report["action_space"] == "MultiDiscrete" and report["reference"] == "exact"
    names = {s["estimator"] for s in report["estimators"]}
    assert {"straight_through", "gumbel_rao", "reinmax", "exact", "pathwise"} <= names
    exact = next(s for s in report["estimators"] if s["estimator"] == "exact")
    assert exact["bias"] < 1e-6
    logged = [json.loads(line) for line in (binned_run / "metrics.jsonl").read_text()
              .splitlines()]
    assert any("grad/reinmax/bias" in r for r in logged)


@pytest.mark.parametrize("overrides,message", [
    (["env=CartPole-v1", "action_bins=5"],
     "action_bins=5 discretizes a Box action space; CartPole-v1 has Discrete actions"),
    (["env=Pendulum-v1", "action_bins=1"], "action_bins must be >= 2 (or 0: off), got 1"),
    (["env=Pendulum-v1", "estimator=gumbel_rao"],
     "estimator 'gumbel_rao' needs discrete actions"),
    (["env=HalfCheetah-v5", "action_bins=11", "estimator=exact"],
     "1,771,561 joint actions (11^6: 6 sub-actions of 11 values) per state, above "
     "estimator.max_actions=4096"),
    (["env=Pendulum-v1", "action_bins=11", "estimator=exact", "estimator.max_actions=10"],
     "11 joint actions (11^1: 1 sub-action of 11 values) per state, above "
     "estimator.max_actions=10"),
    (["env=Pendulum-v1", "action_bins=11", "estimator=pathwise", "estimator.mc_samples=4"],
     "estimator.mc_samples applies to estimator=gumbel_rao only"),
    (["env=Pendulum-v1", "action_bins=5", "agent=reinforce", "estimator=score"],
     "agent=reinforce does not support action_bins=5"),
    ([f"env={MULTI_BANDIT_ID}", "agent=reinforce", "estimator=score"],
     "agent=reinforce does not support MultiDiscrete actions"),
    (["env=Pendulum-v1", "action_bins=5", "agent.target_entropy=-1"],
     "agent.target_entropy=-1.0 is outside [0, Σ_j log n_j = 1.61]"),
])
def test_settings_that_cannot_work_are_refused_in_one_line(tmp_path, capsys, overrides,
                                                           message):
    base = tiny()
    if "agent=reinforce" in overrides:  # SAC's keys are not REINFORCE's
        base = [o for o in base if not o.startswith("agent.")] + ["agent.batch_steps=50"]
    code, _, err = run_cli(capsys, "train", "--no-progress", *base, *overrides,
                           f"run_dir={tmp_path / 'run'}")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert message in lines[0]
    assert not (tmp_path / "run").exists()
