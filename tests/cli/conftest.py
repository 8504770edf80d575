"""Session fixtures: tiny runs made once and shared by the CLI tests (see ``_cli``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _cli import CONTINUOUS, main, tiny, train_quietly


@pytest.fixture(scope="session")
def discrete_run(tmp_path_factory) -> Path:
    """A finished tiny SAC run on the discrete bandit. It trains with ``import wandb``
    made impossible, which proves that wandb.mode=disabled runs no wandb code at all."""
    run_dir = tmp_path_factory.mktemp("discrete") / "run"
    # Only the one key: mock.patch.dict(sys.modules) would also drop every module imported
    # meanwhile, and torch cannot be imported twice.
    saved = sys.modules.get("wandb")
    sys.modules["wandb"] = None  # `import wandb` now raises ImportError
    try:
        assert train_quietly(*tiny(), f"run_dir={run_dir}") == 0
    finally:
        if saved is None:
            del sys.modules["wandb"]
        else:
            sys.modules["wandb"] = saved
    return run_dir


@pytest.fixture(scope="session")
def continuous_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("continuous") / "run"
    assert train_quietly(*tiny(CONTINUOUS), f"run_dir={run_dir}") == 0
    return run_dir


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory) -> Path:
    """Two seeds of the tiny discrete run through ``pathwise train -m`` (Hydra multirun)."""
    sweep = tmp_path_factory.mktemp("sweep") / "sweep"
    tiny_overrides = [o for o in tiny() if not o.startswith("eval_every")]
    assert main(["train", "-m", "--no-progress", *tiny_overrides, "eval_every=25",
                 "seed=0,1", f"hydra.sweep.dir={sweep}"]) == 0
    return sweep
