"""``pathwise compare`` keeps a discretized task apart from its Box original."""

import json

from omegaconf import OmegaConf

from pathwise.analysis.compare import load_run, summarize


def fake_run(path, bins: int, score: float):
    path.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"env": "Pendulum-v1", "agent": {"name": "sac"},
                                     "estimator": {"name": "pathwise"}, "seed": 0,
                                     "action_bins": bins}), path / "config.yaml")
    (path / "metrics.jsonl").write_text(json.dumps(
        {"global_step": 100, "time": 1.0, "eval/return_mean": score}) + "\n")
    return load_run(path)


def test_binned_and_box_runs_of_one_env_are_separate_groups(tmp_path):
    runs = [fake_run(tmp_path / "box", 0, -150.0), fake_run(tmp_path / "bins", 11, -300.0)]
    assert [r.env for r in runs] == ["Pendulum-v1", "Pendulum-v1[bins=11]"]
    rows = {row.env: row.mean for row in summarize(runs)}
    assert rows == {"Pendulum-v1": -150.0, "Pendulum-v1[bins=11]": -300.0}
