"""Checkpoints and saved policies: plain dicts of tensors and builtins, written atomically,
read back with ``torch.load(weights_only=True)`` so a file can never run code on load."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

from pathwise.policies.policy import Policy

CHECKPOINT_FORMAT = "pathwise-checkpoint"
POLICY_FORMAT = "pathwise-policy"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint or policy file that cannot be used; the message is one line."""


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``.

    A crash mid-write leaves the previous file intact: ``os.replace`` is atomic on POSIX
    when source and target are on the same filesystem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_load(path: str | Path, expected_format: str, map_location="cpu") -> dict:
    """Load a file we wrote, refusing anything else with a one-line ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a class or function to call: what a code payload needs
            raise CheckpointError(
                f"{path}: refused to load: it holds more than tensors and plain values, and "
                f"loading it could run code from it ({_refusal(err)})") from None
        raise CheckpointError(f"{path}: corrupt or truncated file (not readable as a "
                              f"torch.save file)") from None
    except Exception as err:  # torch raises many kinds of error for a damaged file
        reason = _first_sentence(err) if isinstance(err, (RuntimeError, OSError)) \
            else "not readable as a torch.save file"
        raise CheckpointError(f"{path}: corrupt or truncated file ({reason})") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} file")
    if obj.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {obj.get('version')} is not supported "
            f"(this pathwise reads version {FORMAT_VERSION})"
        )
    return obj


def _first_sentence(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text.split(". ")[0][:160]


def _refusal(err: BaseException) -> str:
    """What torch's weights_only unpickler refused ("unsupported GLOBAL posix.system …"),
    without its advice to load the file unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(("Weights only load failed",
                                                              "Check the documentation"))]
    return _first_sentence(reasons[0]) if reasons else "unsupported content"


def save_policy(policy: Policy, path: str | Path, **metadata) -> None:
    """The policy alone: its constructor spec and weights, plus metadata (env id, agent…)."""
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    atomic_save({"format": POLICY_FORMAT, "version": FORMAT_VERSION, "spec": policy.spec(),
                 "state_dict": state, "metadata": metadata}, path)


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> Policy:
    """A saved policy, ready for ``predict`` (Stable-Baselines3's protocol).

    ``path`` may be a ``policy.pt`` file or a run directory holding one.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "policy.pt"
    obj = safe_load(path, POLICY_FORMAT)
    try:
        policy = Policy(**obj["spec"])
        policy.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: policy weights do not match its spec ({err})") from None
    policy.metadata = dict(obj.get("metadata", {}))
    return policy.to(device).eval()
