"""Crash safety: `pathwise train` killed with SIGKILL (no handler runs, no final checkpoint) at
several points always leaves a checkpoints/last.pt that loads, and `resume=` continues."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from _cli import run_cli, tiny

from pathwise.training.checkpoint import safe_load
from pathwise.training.tracking import read_metrics

EXE = shutil.which("pathwise") or ""
TOTAL = 200


def start(*overrides: str) -> subprocess.Popen:
    if not EXE:
        pytest.skip("the pathwise console script is not installed")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([EXE, "train", "--no-progress", *overrides], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended before the kill point: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the kill point")
        time.sleep(0.002)


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()


def mtime(path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def test_sigkill_at_any_point_leaves_a_loadable_checkpoint_and_resume_continues(tmp_path,
                                                                                capsys):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    metrics = run_dir / "metrics.jsonl"
    steps = []

    def survived() -> None:
        checkpoint = safe_load(last, "pathwise-checkpoint")  # loads: never half-written
        assert checkpoint["global_step"] < TOTAL
        steps.append(checkpoint["global_step"])
        read_metrics(metrics)  # a last line cut mid-write is skipped

    # A checkpoint every 10 steps, a log line every 10: kills land in and around writes.
    overrides = tiny(total_steps=TOTAL, checkpoint_every=10, log_every=10, eval_every=0)
    proc = start(*overrides, f"run_dir={run_dir}")
    wait_for(last.exists, proc)  # 1. just after the first checkpoint landed
    sigkill(proc)
    survived()

    proc = start(f"resume={run_dir}")
    seen = mtime(last)
    wait_for(lambda: mtime(last) != seen, proc)  # 2. the resumed run saved a checkpoint…
    seen, size = mtime(last), metrics.stat().st_size
    wait_for(lambda: metrics.stat().st_size > size, proc)  # …then logged: mid-interval
    sigkill(proc)
    survived()
    assert steps[1] > steps[0]  # the resumed run got further before it died

    # 3. to the end (in this process: the killing is done)
    code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}",
                           "checkpoint_every=50")
    assert code == 0, err
    assert safe_load(last, "pathwise-checkpoint")["global_step"] == TOTAL
    logged = [r["global_step"] for r in read_metrics(metrics)]
    assert logged == sorted(logged) and logged[-1] == TOTAL  # one curve, no duplicate steps
    assert len(logged) == len(metrics.read_text().splitlines())  # no partial line left
    assert not list(last.parent.glob("*.tmp"))  # temp files of killed writes are cleaned
