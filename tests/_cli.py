"""Helpers of the CLI tests: tiny training runs on the testbeds.

Every run here is a few seconds: a one-step bandit, 16-unit networks, 100 env steps of which
68 take a gradient update (learning_starts=32 < total_steps, so updates really run), one
torch thread, and wandb disabled unless a test is about wandb.
"""

from __future__ import annotations

import json
from pathlib import Path

from pathwise.cli import main

DISCRETE = "pathwise/DiscreteBandit-v0"
CONTINUOUS = "pathwise/ContinuousBandit-v0"


def tiny(env: str = DISCRETE, **extra) -> list[str]:
    """Overrides of a seconds-long run; ``extra`` adds or replaces key=value pairs."""
    values = {"env": env, "total_steps": 100, "agent.hidden_sizes": "[16]",
              "agent.learning_starts": 32, "agent.batch_size": 32, "agent.buffer_size": 1000,
              "eval_every": 50, "eval_episodes": 3, "log_every": 25, "checkpoint_every": 50,
              "torch_threads": 1, "wandb.mode": "disabled"}
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``pathwise ARGS`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def train_quietly(*overrides: str) -> int:
    return main(["train", "--no-progress", *overrides])


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
