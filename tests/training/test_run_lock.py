"""One writer per run dir: a second train or resume of a run that is training is refused in
one line naming the process; a lock left by a killed process is taken over with a note."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
from _cli import run_cli, tiny

from pathwise.errors import RunLockedError
from pathwise.training.checkpoint import load_checkpoint
from pathwise.training.run_dir import RunLock, lock_holder

EXE = shutil.which("pathwise") or ""


def test_a_second_lock_on_the_same_run_dir_is_refused_and_released_after(tmp_path):
    with RunLock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path):  # free again
        pass


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_note(tmp_path):
    dead = _a_finished_pid()
    (tmp_path / ".lock").write_text(f"{dead}\n")
    with pytest.warns(RuntimeWarning, match=f"took over the lock of process {dead}"):
        RunLock(tmp_path).acquire().release()


def _a_finished_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(not EXE, reason="the pathwise console script is not installed")
def test_resume_and_eval_of_a_run_that_is_training(tmp_path, capsys):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.Popen([EXE, "train", "--no-progress",
                             *tiny(total_steps=1_000_000, checkpoint_every=50, eval_every=0),
                             f"run_dir={run_dir}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert lock_holder(run_dir) == proc.pid

        code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}")
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"pid {proc.pid}" in err and "another process" in err

        code, _, err = run_cli(capsys, "eval", run_dir)
        assert code == 2 and "still training" in err and f"pid {proc.pid}" in err
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # The killed run's lock is stale: resume takes it over and finishes.
    step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["global_step"]
    with pytest.warns(RuntimeWarning, match=f"took over the lock of process {proc.pid}"):
        code, _, err = run_cli(capsys, "train", "--no-progress", f"resume={run_dir}",
                               f"total_steps={step + 20}")
    assert code == 0, err
    assert lock_holder(run_dir) is None
