"""Sweeps: Hydra launchers (joblib here, submitit's local executor for the cluster path), the
torch-thread budget of parallel jobs, the wandb sweep config, and `pathwise compare` on a sweep.

Each sweep is two seconds-long runs on the discrete bandit (see ``_cli.tiny``)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml
from _cli import DISCRETE, run_cli, tiny
from omegaconf import OmegaConf

from pathwise.cli import main
from pathwise.training.compose import compose_train, parse_overrides
from pathwise.training.config import as_train_config
from pathwise.training.sweeps import available_cores, job_threads, thread_budget

ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILE = ROOT / "configs" / "sweeps" / "estimators.yaml"
LAUNCHERS = ROOT / "configs" / "hydra" / "launcher"

BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
RAY = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def sweep_overrides(**extra) -> list[str]:
    return tiny(**{"eval_every": 0, **extra})


def run_configs(sweep: Path) -> dict:
    return {p.parent.name: OmegaConf.load(p) for p in sorted(sweep.glob("*/config.yaml"))}


# -- the thread budget ----------------------------------------------------------------------
@pytest.mark.parametrize("launcher,cores,budget", [
    (BASIC, 8, 8),                                               # one job at a time
    ({"_target_": JOBLIB, "n_jobs": 2}, 8, 4),
    ({"_target_": JOBLIB, "n_jobs": 3}, 8, 2),
    ({"_target_": JOBLIB, "n_jobs": -1}, 8, 1),                  # joblib: every core
    ({"_target_": JOBLIB, "n_jobs": -5}, 8, 2),                  # all but four
    ({"_target_": JOBLIB, "n_jobs": 16}, 8, 1),
    ({"_target_": SLURM, "cpus_per_task": 4}, 64, 4),
    ({"_target_": SLURM, "cpus_per_task": None}, 64, 1),         # what Slurm reserves
    ({"_target_": LOCAL, "cpus_per_task": 4}, 2, 2),             # never above the cores
    ({"_target_": RAY, "ray": {"init": {}, "remote": {"num_cpus": 3}}}, 8, 3),
    ({"_target_": RAY, "ray": {"init": {}, "remote": {}}}, 8, 1),
    ({"_target_": "somewhere.SomeLauncher"}, 8, 1),
])
def test_thread_budget_of_each_launcher(launcher, cores, budget):
    assert thread_budget(launcher, cores) == budget


def test_parallel_jobs_times_threads_never_exceed_the_cores():
    for cores, n_jobs, asked in itertools.product((1, 2, 3, 8, 16), (1, 2, 3, 5, 8, -1),
                                                  (0, 1, 2, 4, 32)):
        launcher = {"_target_": JOBLIB, "n_jobs": n_jobs}
        threads, budget = job_threads(asked, launcher, cores), thread_budget(launcher, cores)
        workers = cores if n_jobs == -1 else n_jobs
        assert threads >= 1 and (workers * threads <= cores or threads == 1)
        assert threads == (budget if asked == 0 else min(asked, budget))


# -- local multirun in parallel: hydra/launcher=joblib ----------------------------------------
@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    """estimator=pathwise,score as two parallel joblib jobs, torch_threads=0 (torch's default,
    which the sweep must turn into the job's share of the cores)."""
    sweep = tmp_path_factory.mktemp("joblib") / "sweep"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "-m", "--no-progress", *sweep_overrides(torch_threads=0),
                     "estimator=pathwise,score", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"])
    assert code == 0, err.getvalue()
    return sweep, err.getvalue()


def test_joblib_sweep_makes_one_run_dir_per_job_with_its_share_of_the_cores(joblib_sweep):
    sweep, err = joblib_sweep
    configs = run_configs(sweep)
    assert set(configs) == {"0", "1"}
    assert sorted(c.estimator.name for c in configs.values()) == ["pathwise", "score"]
    share = max(1, available_cores() // 2)
    assert all(c.torch_threads == share for c in configs.values())
    assert all((sweep / name / "policy.pt").is_file() for name in configs)
    assert f"2 runs in {sweep}; aggregate them: pathwise compare {sweep}" in err


def test_compare_aggregates_a_sweep_dir(joblib_sweep, tmp_path, capsys):
    sweep, _ = joblib_sweep
    code, out, err = run_cli(capsys, "compare", sweep, "--out", tmp_path / "cmp", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert sorted((r["env"], r["estimator"], r["runs"]) for r in rows) == [
        (DISCRETE, "pathwise", 1), (DISCRETE, "score", 1)]
    assert (tmp_path / "cmp" / "report.md").is_file()


# -- the cluster path: submitit's local executor ---------------------------------------------
@pytest.mark.skipif(not installed("hydra_plugins.hydra_submitit_launcher"),
                    reason="needs hydra-submitit-launcher (the [slurm] extra)")
def test_a_two_job_sweep_through_submitit_local(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    code, _, err = run_cli(capsys, "train", "-m", "--no-progress", *sweep_overrides(),
                           "seed=0,1", "hydra/launcher=submitit_local",
                           "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={sweep}")
    assert code == 0, err
    configs = run_configs(sweep)
    assert sorted(c.seed for c in configs.values()) == [0, 1]
    assert all((sweep / name / "policy.pt").is_file() for name in configs)
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.err"))
    assert logs.count("(torch threads 1)") == 2  # cpus_per_task unset: one CPU per job


@pytest.mark.skipif(not installed("hydra_plugins.hydra_submitit_launcher"),
                    reason="needs hydra-submitit-launcher (the [slurm] extra)")
def test_slurm_config_extends_submitit_slurm_with_placeholders():
    from hydra import compose, initialize_config_module

    from pathwise.training.compose import register_schemas

    register_schemas()
    with initialize_config_module("pathwise.configs", version_base=None):
        cfg = compose("train", overrides=["hydra/launcher=slurm",
                                          "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == SLURM
    assert launcher.partition == "gpu" and launcher.timeout_min > 0
    assert launcher.submitit_folder.endswith(".submitit/%j")
    assert thread_budget(launcher, 64) == launcher.cpus_per_task == 2


def test_ray_cluster_config_joins_a_running_cluster():
    text = yaml.safe_load((LAUNCHERS / "ray_cluster.yaml").read_text())
    assert text["defaults"] == ["ray", "_self_"]
    assert text["ray"]["init"]["address"] == "auto"
    assert thread_budget({"_target_": RAY, **text}, 8) == text["ray"]["remote"]["num_cpus"]


@pytest.mark.skipif(installed("hydra_plugins.hydra_ray_launcher"),
                    reason="hydra-ray-launcher is installed")
def test_a_launcher_whose_extra_is_missing_names_the_extra(capsys):
    code, _, err = run_cli(capsys, "train", "-m", "seed=0", "hydra/launcher=ray_cluster")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install "pathwise-rl[ray]"' in err


# -- wandb sweeps ---------------------------------------------------------------------------
def sweep_config() -> dict:
    return yaml.safe_load(SWEEP_FILE.read_text())


def grid(config: dict) -> list[dict]:
    """Every grid point of a sweep config, as wandb's agent receives it: name → {"value": v}."""
    names = list(config["parameters"])
    choices = [p["values"] if "values" in p else [p["value"]]
               for p in config["parameters"].values()]
    return [{n: {"value": v} for n, v in zip(names, point)}
            for point in itertools.product(*choices)]


def render(config: dict, args: dict) -> list[str]:
    """The command line a wandb agent runs for one grid point (wandb_agent.Agent._command_run,
    through wandb's own macro helpers)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    macros = {**create_sweep_command_args({"args": args}), "env": ["/usr/bin/env"]}
    argv = []
    for chunk in create_sweep_command(list(config["command"])):
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros[chunk[2:-1]]
        else:
            argv.append(chunk)
    return argv


def test_the_wandb_sweep_config_is_a_grid_over_estimator_and_seed():
    config = sweep_config()
    assert config["method"] == "grid"
    assert set(config["metric"]) == {"name", "goal"} and config["metric"]["goal"] == "maximize"
    params = config["parameters"]
    for name, spec in params.items():  # grid needs finite choices: value or values
        assert isinstance(spec, dict) and len(set(spec) & {"value", "values"}) == 1, name
    assert params["estimator"]["values"] == ["pathwise", "score", "exact"]
    assert len(params["seed"]["values"]) == 5
    assert config["command"][:3] == ["${env}", "pathwise", "train"]
    assert "${args_no_hyphens}" in config["command"] and "wandb.mode=online" in config["command"]
    if installed("sweeps"):  # wandb[sweeps]: the schema wandb itself validates against
        import sweeps

        assert sweeps.schema_violations_from_proposed_config(config) == []


def test_every_grid_point_renders_a_valid_pathwise_train_command():
    config = sweep_config()
    points = grid(config)
    assert len(points) == 15
    seen, composed = set(), set()
    for args in points:
        argv = render(config, args)
        assert argv[:4] == ["/usr/bin/env", "pathwise", "train", "--no-progress"]
        overrides = {o.key_or_group: o.value() for o in parse_overrides(argv[4:])}
        seen.add((overrides["estimator"], overrides["seed"]))
        if overrides["estimator"] in composed:  # seeds differ in one int: compose each
            continue                            # estimator once (half a second each)
        composed.add(overrides["estimator"])
        cfg = as_train_config(compose_train(argv[4:])[0])  # raises on any invalid override
        assert (cfg.env, cfg.total_steps) == (overrides["env"], overrides["total_steps"])
        assert cfg.wandb.mode == "online" and cfg.diagnostics.every > 0
    assert len(seen) == 15 and composed == {"pathwise", "score", "exact"}


def test_a_rendered_grid_point_starts_a_training_run(tmp_path, capsys):
    config = sweep_config()
    args = grid(config)[-1]  # exact, seed 4
    code, out, err = run_cli(capsys, *render(config, args)[2:4], "--print-config",
                             *render(config, args)[4:])
    assert code == 0, err
    assert "name: exact" in out and "seed: 4" in out and "env: CartPole-v1" in out
    # The same command, shrunk to a few hundred steps and without wandb, trains for real.
    args = {**args, **{k: {"value": v} for k, v in [
        ("total_steps", 100), ("diagnostics.every", 100), ("diagnostics.samples", 4),
        ("agent.learning_starts", 32), ("agent.batch_size", 32),
        ("agent.hidden_sizes", "[16]"), ("eval_every", 0),
        ("eval_episodes", 1), ("run_dir", str(tmp_path / "run"))]}}
    argv = [a for a in render(config, args)[2:] if a != "wandb.mode=online"]
    code, _, err = run_cli(capsys, *argv, "wandb.mode=disabled")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records[-1]["global_step"] == 100
    assert any("grad/exact/variance" in r or "grad/pathwise/variance" in r for r in records)


def load_benchmark(name: str = "estimators"):
    """benchmarks/<name>.py as a module (benchmarks/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_headline_benchmark_adds_only_the_new_seeds(tmp_path, monkeypatch, capsys):
    bench = load_benchmark()
    monkeypatch.setattr(bench, "TABLE", [(DISCRETE, 60, 2, ("pathwise", "exact"), 30)])
    # Small nets and a short warm-up; threads as a test run has them.
    quick = ["--", "agent.hidden_sizes=[16]", "agent.learning_starts=32", "agent.batch_size=32",
             "eval_every=0", "eval_episodes=2", "checkpoint_every=0", "torch_threads=1"]
    out = tmp_path / "out"
    assert bench.main(["--out", str(out), "--seeds", "1", *quick]) == 0
    runs = out / "runs" / bench.env_key(DISCRETE)
    assert bench.runs_in(runs) == ({("pathwise", 0), ("exact", 0)}, [])
    first = sorted(p.stat().st_mtime_ns for p in runs.rglob("policy.pt"))
    assert bench.main(["--out", str(out), *quick]) == 0  # the table's 2 seeds: adds seed 1
    assert bench.runs_in(runs)[0] == {(e, s) for e in ("pathwise", "exact") for s in (0, 1)}
    assert (runs / "seeds-1-1").is_dir()
    # Seed 0's runs were not run again, and the report counts both seeds.
    assert sorted(p.stat().st_mtime_ns for p in runs.glob("[0-9]*/policy.pt")) == first
    report = (out / "estimators.md").read_text()
    assert re.search(r"\| pathwise \| 2 \|", report) and re.search(r"\| exact \| 2 \|", report)
    assert report.count("pathwise train -m") == 2  # both sweeps behind it, as run
    assert "actions drawn per state in training: pathwise 1)" in report  # exact draws none
    capsys.readouterr()
    assert bench.main(["--out", str(out), *quick]) == 0  # nothing left to run
    assert "not run again" in capsys.readouterr().err
    # A run still training (here: one whose policy.pt is not written yet) stays out of the
    # report instead of entering it with a mid-training score.
    for policy in (runs / "seeds-1-1").rglob("policy.pt"):
        policy.unlink()
    assert bench.main(["--out", str(out), "--compare-only"]) == 0
    report = (out / "estimators.md").read_text()
    assert re.search(r"\| pathwise \| 1 \|", report) and re.search(r"\| exact \| 1 \|", report)
    assert "2 unfinished runs left out" in capsys.readouterr().err
    # A pass with another budget into the same runs dir is refused, not counted as done.
    with pytest.raises(SystemExit, match="a run of 60 steps where this benchmark trains 300"):
        bench.main(["--out", str(out), "--quick", *quick])


def test_the_learning_benchmark_reads_finished_runs_and_refuses_unfinished_ones(tmp_path,
                                                                                capsys):
    bench = load_benchmark("learning")
    bench.TABLE = [("sac", "exact", DISCRETE, 300, None)]
    runs = tmp_path / "runs"
    assert bench.main(["--seeds", "1", "--runs", str(runs), "--json", str(tmp_path / "a.json")]) \
        == 0
    (run_dir,) = runs.iterdir()
    first = json.loads((tmp_path / "a.json").read_text())
    metrics_before = (run_dir / "metrics.jsonl").read_bytes()
    # Again with a second seed: seed 0 is read from its run dir, only seed 1 trains.
    assert bench.main(["--seeds", "2", "--runs", str(runs), "--json", str(tmp_path / "b.json")]) \
        == 0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second[0]["return"] == first[0]["return"] and second[1]["seed"] == 1
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before
    assert len(list(runs.iterdir())) == 2
    # A run of another budget (or an unfinished one) in its place stops the benchmark.
    bench.TABLE = [("sac", "exact", DISCRETE, 400, None)]
    with pytest.raises(SystemExit, match="holds no finished 400-step run"):
        bench.main(["--seeds", "1", "--runs", str(runs)])
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before


@pytest.mark.parametrize("cpus,busy,expected", [(2, 0.05, 2), (2, 0.9, 1), (2, 1.6, 1),
                                                 (8, 3.4, 5), (8, 30.0, 1), (1, 0.0, 1)])
def test_a_single_run_takes_the_cores_that_are_idle_right_now(monkeypatch, cpus, busy,
                                                               expected):
    from pathwise.training import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: cpus)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(runtime, "_busy_cpus", lambda window: busy)
    assert runtime.auto_threads() == expected


def test_busy_cpus_counts_a_process_that_burns_a_core():
    """A child process spinning on one core reads as about one busy CPU (whatever else runs
    here adds to it, never takes from it)."""
    import subprocess
    import sys

    from pathwise.training import runtime

    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert runtime._busy_cpus(0.5) >= 0.7
    finally:
        spinner.kill()
        spinner.wait()


@pytest.mark.parametrize("setup, expected, for_others", [
    ("", "PASSIVE", None),                          # set by the import, not passed on to SB3
    ("os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'", "ACTIVE", "ACTIVE"),  # the user's value wins
    ("import torch", None, None),                   # too late: libgomp has read it already
])
def test_import_pathwise_makes_torch_threads_wait_passively(setup, expected, for_others):
    """Spinning OpenMP threads of two runs on the same cores starve each other (README,
    Speed); the variable has to be in the environment before torch loads libgomp."""
    import subprocess
    import sys

    code = (f"import os; os.environ.pop('OMP_WAIT_POLICY', None); {setup}\n"
            "import pathwise, torch\n"
            "from pathwise.training.runtime import environ_for_other_libraries as other\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), other().get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(expected), str(for_others)]


def test_torch_threads_0_is_decided_once_and_recorded(tmp_path, capsys, monkeypatch):
    from pathwise.training import runtime

    monkeypatch.setattr(runtime, "auto_threads", lambda: 1)
    run_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--no-progress", *tiny(torch_threads=0),
                           f"run_dir={run_dir}")
    assert code == 0 and "1 torch thread," in err
    assert OmegaConf.load(run_dir / "config.yaml").torch_threads == 1


def test_the_headline_diagnostics_table_reports_statistics_above_their_noise_floors(tmp_path):
    """A gradient at its noise floor reads 0 signal and 0 bias, not 0.0625 and the floor."""
    from pathwise.analysis.compare import load_run
    from pathwise.training.config import TrainConfig

    bench = load_benchmark()
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(env="CartPole-v1", total_steps=1000, run_dir=str(run))
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    stats = {"variance": 1.6, "signal_to_noise": 0.0625, "signal_to_noise_corrected": 0.0,
             "snr": 0.21, "snr_median": 0.18, "snr_median_floor": 0.173, "cosine": 0.12,
             "bias": 0.32, "bias_corrected": 0.0, "bias_se": 0.32}
    record = {"global_step": 1000, "time": 1.0,
              **{f"grad/score_no_baseline/{k}": v for k, v in stats.items()}}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    header, _, row = bench.diagnostics_table([load_run(run)])
    assert "median SNR_j | its floor" in header and "bias above its floor" in header
    assert row == ("| CartPole-v1 | pathwise | score_no_baseline | 1.6 | 0 | 0.18 | 0.173 | "
                   "0.12 | 0 | 0.32 |")
