"""Progress people can read anywhere: plain lines off a terminal (one per log interval, one
per evaluation), a bar with evaluation lines on one; the return shown is the mean of the
last 10 episodes."""

from __future__ import annotations

import io
import re

import pytest
from _cli import records, run_cli, tiny

from pathwise.cli.progress import Progress
from pathwise.training.config import EstimatorConfig, TrainConfig, WandbConfig
from pathwise.training.loop import train

LOG_LINE = re.compile(r"step [\d,]+/[\d,]+ \(\d+%\): [\d.e+-]+ steps/s, return (-?[\d.e+-]+|-) "
                      r"\(last 10 episodes\), ETA (\d+h\d\dm|\d+m\d\ds|\d+s|-)")
EVAL_LINE = re.compile(r"step [\d,]+/[\d,]+ \(\d+%\): eval return -?[\d.e+-]+ ± [\d.e+-]+ "
                       r"\(\d+ episodes on \S+(, best so far)?\)")


def test_off_a_terminal_one_plain_line_per_log_interval_and_per_evaluation(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", *tiny(total_steps=100, log_every=20,
                                                  eval_every=50), f"run_dir={tmp_path / 'r'}")
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("pathwise train: sac-pathwise on")
    logs = [line for line in lines if LOG_LINE.fullmatch(line)]
    evals = [line for line in lines if EVAL_LINE.fullmatch(line)]
    assert len(logs) == 5 and len(evals) == 2, err
    assert "best so far" in evals[0]
    assert all(line == line.rstrip() for line in lines)  # no padding
    assert "\r" not in err and "\x1b" not in err  # no bar, no colour codes


def test_no_progress_prints_the_header_alone(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--no-progress", *tiny(log_every=20),
                           f"run_dir={tmp_path / 'r'}")
    assert code == 0 and len(err.strip().splitlines()) == 1


def test_the_return_shown_is_the_mean_of_the_last_10_episodes(tmp_path):
    seen = []
    cfg = TrainConfig(env="pathwise/DiscreteBandit-v0", total_steps=60, eval_every=0,
                      log_every=20, run_dir=str(tmp_path / "r"), device="cpu",
                      estimator=EstimatorConfig(name="exact"),
                      wandb=WandbConfig(mode="disabled"))
    cfg.agent.learning_starts, cfg.agent.batch_size, cfg.agent.hidden_sizes = 16, 16, [8]
    train(cfg, progress=lambda step, info: seen.append((step, info)))
    returns = [r["charts/episodic_return"] for r in records(tmp_path / "r")
               if "charts/episodic_return" in r]
    assert len(returns) == 60  # one-step episodes
    step, info = [(s, i) for s, i in seen if i["event"] == "step"][-1]
    assert step == 60
    assert info["recent_return"] == pytest.approx(sum(returns[-10:]) / 10)
    assert [i["event"] for _, i in seen].count("log") == 3
    assert seen[-1][1]["event"] == "eval"  # the final evaluation


def test_a_callback_that_returns_false_stops_the_run_like_ctrl_c(tmp_path):
    cfg = TrainConfig(env="pathwise/DiscreteBandit-v0", total_steps=100, eval_every=0,
                      run_dir=str(tmp_path / "r"), device="cpu",
                      wandb=WandbConfig(mode="disabled"))
    cfg.agent.learning_starts, cfg.agent.batch_size, cfg.agent.hidden_sizes = 16, 16, [8]
    result = train(cfg, progress=lambda step, info: step < 40)
    assert result.interrupted and result.global_step == 40


def test_on_a_terminal_a_bar_and_a_line_per_evaluation(monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    stream = io.StringIO()
    with Progress(100, "sac-pathwise", "header", stream=stream) as progress:
        assert progress.terminal
        for step in range(1, 101):
            progress(step, {"event": "step", "recent_return": -5.0})
        progress(100, {"event": "eval", "recent_return": -5.0, "return_mean": -4.0,
                       "return_std": 1.0, "episodes": 10, "best": True, "env": "X-v0"})
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # drop the bar's codes
    assert "header\n" in out
    assert "eval return -4 ± 1 (10 episodes on X-v0, best so far)" in out
    assert "return       -5" in out and "100/100" in out  # the bar
