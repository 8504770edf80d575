"""`pathwise compare` never pools unlike runs: runs whose configs differ in anything but the
seed go in separate groups, labelled by what differs; repeated seeds are reported; each
group's curves use its own steps."""

from __future__ import annotations

import json

from _cli import run_cli
from omegaconf import OmegaConf

from pathwise.analysis.compare import curve, group_runs, load_run
from pathwise.training.config import TrainConfig


def fake_run(root, name, seed, total_steps, num_envs=1, **extra):
    """A run dir as training leaves it: its config.yaml, and evaluations every 1000 steps
    whose return is the step / 1000 (so a run's score says how far it got)."""
    run = root / name
    run.mkdir(parents=True)
    cfg = TrainConfig(seed=seed, total_steps=total_steps, num_envs=num_envs,
                      run_dir=str(run), **extra)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    lines = [json.dumps({"global_step": s, "time": s / 100, "eval/return_mean": s / 1000})
             for s in range(1000, total_steps + 1, 1000)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_runs_of_other_budgets_envs_counts_and_repeated_seeds_are_not_pooled(tmp_path, capsys):
    root = tmp_path / "runs"
    fake_run(root, "a", 0, 2000)
    fake_run(root, "b", 0, 3000)
    fake_run(root, "c", 0, 20_000)
    fake_run(root, "d", 0, 20_000)  # seed 0 again
    fake_run(root, "e", 1, 20_000)
    fake_run(root, "f", 2, 20_000, num_envs=4)
    fake_run(root, "g", 3, 20_000, torch_threads=2, log_every=500)  # not the experiment
    code, out, err = run_cli(capsys, "compare", root, "--out", tmp_path / "cmp", "--json")
    assert code == 0, err
    rows = {row["variant"]: row for row in json.loads(out)}
    assert set(rows) == {"num_envs=1, total_steps=2000", "num_envs=1, total_steps=3000",
                         "num_envs=1, total_steps=20000", "num_envs=4, total_steps=20000"}
    main = rows["num_envs=1, total_steps=20000"]
    assert main["runs"] == 4 and sorted(main["seeds"]) == [0, 0, 1, 3]
    assert main["duplicate_seeds"] == [0]
    assert main["steps"] == 20_000  # its own steps, not 2,000
    assert main["mean"] == 19.0  # evaluations over its last 10%: 18, 19, 20
    assert rows["num_envs=1, total_steps=2000"]["runs"] == 1


def test_each_groups_curve_spans_its_own_steps_and_the_table_says_what_differs(tmp_path,
                                                                               capsys):
    root = tmp_path / "runs"
    fake_run(root, "short", 0, 2000)
    fake_run(root, "long", 0, 20_000)
    groups = group_runs([load_run(p) for p in sorted(root.iterdir())])
    spans = sorted(curve(g.runs, "eval/return_mean")[0].max() for g in groups)
    assert spans == [2000, 20_000]
    code, out, _ = run_cli(capsys, "compare", root, "--out", tmp_path / "cmp")
    assert code == 0
    assert "pathwise [total_steps=2000]" in out and "pathwise [total_steps=20000]" in out


def test_a_lone_group_has_no_variant_label(tmp_path, capsys):
    root = tmp_path / "runs"
    fake_run(root, "a", 0, 3000)
    fake_run(root, "b", 1, 3000)
    code, out, _ = run_cli(capsys, "compare", root, "--out", tmp_path / "cmp", "--json")
    [row] = json.loads(out)
    assert row["variant"] == "" and row["runs"] == 2 and row["duplicate_seeds"] == []
