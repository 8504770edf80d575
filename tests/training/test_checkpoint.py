"""Checkpoint files: loading never runs code from the file; writes are atomic; corrupt, foreign
and truncated files get one-line errors; random states round-trip completely."""

from __future__ import annotations

import ast
import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import pathwise.training.checkpoint as checkpoint_module
from pathwise.training.checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    POLICY_FORMAT,
    CheckpointError,
    _set_rng_state,
    atomic_save,
    safe_load,
)
from pathwise.training.checkpoint import rng_state as _rng_state
from pathwise.training.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this calls os.mkdir(marker): code that runs when the file is loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def malicious_file(path: Path, marker: Path, fmt: str = CHECKPOINT_FORMAT) -> Path:
    torch.save({"format": fmt, "version": FORMAT_VERSION, "agent": {"x": Payload(marker)}},
               path)
    return path


def test_a_file_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    # The control: loaded the unsafe way, the payload really runs.
    live = tmp_path / "ran-when-loaded-unsafely"
    torch.load(malicious_file(tmp_path / "control.pt", live), weights_only=False)
    assert live.exists()

    marker = tmp_path / "must-never-exist"
    for fmt in (CHECKPOINT_FORMAT, POLICY_FORMAT):
        path = malicious_file(tmp_path / f"{fmt}.pt", marker, fmt)
        with pytest.raises(CheckpointError) as info:
            safe_load(path, fmt)
        message = str(info.value)
        assert len(message.splitlines()) == 1
        assert message.startswith(f"{path}: refused to load") and "mkdir" in message
    assert not marker.exists()


def _calls(tree: ast.AST, module: str, name: str):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == name and isinstance(node.func.value, ast.Name)
                and node.func.value.id == module):
            yield node


def test_every_load_in_the_code_is_weights_only():
    files = [p for folder in ("pathwise", "agents", "policies", "envs", "benchmarks")
             for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 10
    loads = 0
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, "torch", "load"):
            loads += 1
            flags = {k.arg: k.value for k in call.keywords}
            assert isinstance(flags.get("weights_only"), ast.Constant) and \
                flags["weights_only"].value is True, f"{path}:{call.lineno}"
        for name in ("load", "loads", "Unpickler"):
            assert not list(_calls(tree, "pickle", name)), f"{path}: pickle.{name}"
    assert loads >= 1


def test_a_write_that_dies_midway_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "step": 1}, path)
    real_save = torch.save

    def dies_midway(obj, f):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: buffer.tell() // 2])  # half the bytes are on disk…
        raise OSError(28, "No space left on device")  # …when the write fails

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_midway)
    with pytest.raises(OSError):
        atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "step": 2}, path)
    monkeypatch.undo()
    assert safe_load(path, CHECKPOINT_FORMAT)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


def test_truncated_corrupt_foreign_and_future_files_get_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
                 "weights": torch.randn(1000)}, good)
    data = good.read_bytes()
    cases = {"truncated.pt": (data[: len(data) // 2], "corrupt or truncated"),
             "empty.pt": (b"", "corrupt or truncated"),
             "text.pt": (b"hello, I am not a checkpoint\n", "corrupt or truncated"),
             "bytes.pt": (bytes(range(256)) * 4, "corrupt or truncated")}
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    cases["foreign.pt"] = (None, f"not a {CHECKPOINT_FORMAT} file")
    torch.save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION + 1},
               tmp_path / "future.pt")
    cases["future.pt"] = (None, f"format version {FORMAT_VERSION + 1} is not supported")
    cases["missing.pt"] = (None, "no such file")
    for name, (_, reason) in cases.items():
        with pytest.raises(CheckpointError) as info:
            safe_load(tmp_path / name, CHECKPOINT_FORMAT)
        message = str(info.value)
        assert len(message.splitlines()) == 1 and message.startswith(str(tmp_path / name))
        assert reason in message, message


def test_the_metrics_reader_skips_a_partial_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"global_step": 1, "time": 0.1}\n{"global_step": 2, "time": 0.2}\n'
                    '{"global_step": 3, "ti')  # the process died mid-write
    assert [r["global_step"] for r in read_metrics(path)] == [1, 2]


def test_random_states_round_trip_completely_through_a_weights_only_file():
    random.gauss(0, 1)  # leaves a cached second Gaussian in Python's state…
    np.random.standard_normal(1)  # …and in numpy's
    torch.rand(1)
    buffer = io.BytesIO()
    torch.save(_rng_state(), buffer)
    draws = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(),
             torch.rand(3).tolist())
    buffer.seek(0)
    _set_rng_state(torch.load(buffer, weights_only=True))
    assert (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(),
            torch.rand(3).tolist()) == draws
