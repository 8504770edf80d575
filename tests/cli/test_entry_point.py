"""The installed `pathwise` console script, run as a user runs it (a few subprocesses)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

EXE = shutil.which("pathwise") or ""


def pathwise(*args: str, **env) -> subprocess.CompletedProcess:
    if not EXE:
        pytest.skip("the pathwise console script is not installed")
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_version_and_help_answer_without_importing_torch():
    start = time.perf_counter()
    version = pathwise("--version")
    assert version.returncode == 0 and version.stdout.startswith("pathwise ")
    top = pathwise("--help")
    assert top.returncode == 0
    for command in ("train", "eval", "compare"):
        assert command in top.stdout
    code = "import sys, pathwise.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"
    assert time.perf_counter() - start < 30


def test_each_command_has_help():
    for command in ("train", "eval", "compare"):
        result = pathwise(command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, command


def test_a_bad_override_exits_2_with_one_line():
    result = pathwise("train", "agent.lerning_starts=10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pathwise train: error: unknown key 'agent.lerning_starts'; "
        "did you mean agent.learning_starts?"]


def test_debug_shows_the_traceback():
    result = pathwise("eval", "/no/such/run", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr
    result = pathwise("eval", "/no/such/run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
