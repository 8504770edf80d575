"""Exact resume and determinism on CPU.

A run that crashes after step k and resumes from ``checkpoints/last.pt`` ends bit-identical to
one that never stopped: parameters, optimizer and α states, replay buffer or rollout storage,
the RNG states, the envs' states, and every metric except the wall-clock ones.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

import pathwise.training.loop as runner
from pathwise.agents.apg import APGConfig
from pathwise.agents.reinforce import ReinforceConfig
from pathwise.agents.sac import SACConfig, TemperatureSchedule
from pathwise.agents.shac import SHACConfig
from pathwise.training.checkpoint import atomic_save, load_checkpoint
from pathwise.training.config import EstimatorConfig, TrainConfig, WandbConfig, as_train_config
from pathwise.training.tracking import read_metrics

WALL_CLOCK = ("time", "charts/sps")
CRASH_AFTER = 150  # the last checkpoint before the crash is at step 100

CASES = {
    # Gumbel-softmax actor with a temperature schedule that moves during the run.
    "sac-discrete": (lambda: SACConfig(
        hidden_sizes=[16], batch_size=32, learning_starts=64, buffer_size=1000,
        temperature=TemperatureSchedule(start=1.0, end=0.3, decay=0.01, every=50)),
        "CartPole-v1", "pathwise", {}),
    # Two envs, half an update per transition: fractional update credit across the checkpoint;
    # Pendulum's 200-step episodes are running at the checkpoint.
    "sac-box": (lambda: SACConfig(hidden_sizes=[16], batch_size=32, learning_starts=64,
                                  buffer_size=1000, updates_per_step=0.5),
                "Pendulum-v1", "score", {"num_envs": 2}),
    # On-policy storage with episodes running at the checkpoint, and a value baseline.
    "reinforce": (lambda: ReinforceConfig(hidden_sizes=[16], batch_steps=40, value_updates=3),
                  "CartPole-v1", "score", {"num_envs": 2}),
    # A torch env (envs/native.py): its state, step counters, generator and the device-side
    # episode statistics go through the checkpoint; evaluations on Gymnasium's Pendulum-v1.
    "sac-torch-env": (lambda: SACConfig(hidden_sizes=[16], batch_size=32, learning_starts=64,
                                        buffer_size=1000, updates_per_step=0.25),
                      "pathwise/Pendulum-v1", "pathwise", {"num_envs": 5}),
    # action_bins: a factorized policy, bin indices in the buffer, and Box torques replayed
    # into Gymnasium's envs (the adapter maps the bins before the replay wrapper sees them).
    "sac-bins": (lambda: SACConfig(hidden_sizes=[16], batch_size=32, learning_starts=64,
                                   buffer_size=1000),
                 "Pendulum-v1", "gumbel_rao", {"num_envs": 2, "action_bins": 5}),
    # Agents that step the envs themselves (loop.Run.train's rollout branch): 5-step windows
    # of 4 envs, 20 env steps per iteration; the env's state, the observation statistics and
    # (SHAC) critic, target critic and their optimiser go through the checkpoint.
    "apg": (lambda: APGConfig(hidden_sizes=[16], horizon=5),
            "pathwise/PointMass-v0", "pathwise", {"num_envs": 4}),
    "shac": (lambda: SHACConfig(hidden_sizes=[16], critic_hidden_sizes=[16], horizon=5,
                                critic_iterations=2, lr_decay_steps=400),
             "pathwise/Pendulum-v1", "pathwise", {"num_envs": 4}),
}


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no final checkpoint. (A
    BaseException: the loop saves what was trained on an ordinary exception.)"""


def config(name: str, run_dir, seed: int = 0) -> TrainConfig:
    make_agent, env, estimator, extra = CASES[name]
    return TrainConfig(env=env, agent=make_agent(), estimator=EstimatorConfig(name=estimator),
                       seed=seed, total_steps=300, run_dir=str(run_dir), eval_every=150,
                       eval_episodes=1, log_every=20, checkpoint_every=100, device="cpu",
                       torch_threads=1, wandb=WandbConfig(mode="disabled"), **extra)


def crash_at(step: int):
    def progress(global_step, info):
        if global_step >= step:
            raise Crash
    return progress


def resume(run_dir) -> runner.TrainResult:
    cfg = TrainConfig(**{**vars(config_of(run_dir)), "run_dir": None, "resume": str(run_dir)})
    return runner.train(cfg)


def config_of(run_dir) -> TrainConfig:
    """The run's own config, as its checkpoint recorded it."""
    from omegaconf import OmegaConf

    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")["config"]
    return as_train_config(OmegaConf.create(saved))


def metrics(run_dir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
            for r in read_metrics(run_dir / "metrics.jsonl")]


def final_state(run_dir) -> dict:
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    policy = torch.load(run_dir / "policy.pt", weights_only=True)["state_dict"]
    return {"global_step": ck["global_step"], "agent": ck["agent"], "rng": ck["rng"],
            "envs": ck["envs"], "last_metrics": ck["last_metrics"], "policy": policy}


def assert_identical(a, b, path="") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_identical(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per case, made once: the uninterrupted run, and a copy of the run that crashed."""
    made = {}

    def get(name: str):
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            runner.train(config(name, root / "whole"))
            with pytest.raises(Crash):
                runner.train(config(name, root / "crashed"), progress=crash_at(CRASH_AFTER))
            shutil.copytree(root / "crashed", root / "crashed-copy")
            made[name] = root
        return made[name]
    return get


@pytest.mark.parametrize("name", list(CASES))
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(runs, name):
    root = runs(name)
    crashed = root / "crashed"
    checkpoint = load_checkpoint(crashed / "checkpoints" / "last.pt")
    assert checkpoint["global_step"] == 100
    # The crash lost steps past the checkpoint, and some episode was running at it.
    assert max(r["global_step"] for r in metrics(crashed)) > 100
    envs = checkpoint["envs"]
    if "native" in envs:  # a torch env: its step counters
        assert envs["native"]["elapsed_steps"].gt(0).any()
    else:  # Gymnasium envs: the episodes replayed on resume
        assert any(e["actions"] is not None for e in envs["episodes"])

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "resume is not exact" would fail
        result = resume(crashed)
    assert result.global_step == 300
    assert_identical(final_state(crashed), final_state(root / "whole"))
    assert metrics(crashed) == metrics(root / "whole")


def test_the_same_seed_gives_the_same_metrics_and_another_seed_does_not(runs, tmp_path):
    whole = runs("sac-discrete") / "whole"
    runner.train(config("sac-discrete", tmp_path / "again"))
    assert metrics(tmp_path / "again") == metrics(whole)
    assert_identical(final_state(tmp_path / "again"), final_state(whole))
    runner.train(config("sac-discrete", tmp_path / "seed1", seed=1))
    assert metrics(tmp_path / "seed1") != metrics(whole)


def test_without_the_env_state_resume_warns_and_is_not_exact(runs):
    """The control: the env state is what makes the resume above exact."""
    root = runs("reinforce")
    run_dir = root / "crashed-copy"
    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    del checkpoint["envs"]
    atomic_save(checkpoint, path)
    with pytest.warns(RuntimeWarning, match="resume is not exact: the checkpoint holds no env"):
        assert resume(run_dir).global_step == 300
    assert metrics(run_dir) != metrics(root / "whole")


@pytest.mark.parametrize("damage, message", [
    (lambda ck: ck.pop("rng"), "incomplete checkpoint \\(no rng\\)"),
    (lambda ck: ck["rng"].update(torch=torch.zeros(3)), "random-number state is unreadable"),
])
def test_a_checkpoint_with_missing_or_damaged_state_is_refused_in_one_line(runs, tmp_path,
                                                                          damage, message):
    """A file in our format that lacks what resuming reads gets a CheckpointError naming the
    file, never a KeyError or a torch error from deep in the RNG restore."""
    from pathwise.training.checkpoint import CheckpointError

    run_dir = tmp_path / "damaged"
    shutil.copytree(runs("reinforce") / "crashed", run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    # Other tests resume "crashed" in place, possibly to its end: a budget past any of them.
    cfg = TrainConfig(**{**vars(config_of(run_dir)), "run_dir": None, "resume": str(run_dir),
                         "total_steps": 1000})
    damage(checkpoint)
    atomic_save(checkpoint, path)
    with pytest.raises(CheckpointError, match=message) as err:
        runner.train(cfg)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
