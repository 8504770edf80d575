"""The file formats: training checkpoints (``checkpoints/last.pt``) and saved policies
(``policy.pt``, ``checkpoints/best.pt``), and building an agent back from a checkpoint.

Both are plain dicts of tensors and builtins, written atomically, read back with
``torch.load(weights_only=True)`` so a file can never run code on load. A checkpoint holds
the format and version, the resolved config, the global step, the agent's state (networks,
optimizers, replay buffer), every RNG state and the envs' state: enough to continue bit for
bit (docs/reliability.md).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pickle
import random
import secrets
from pathlib import Path

import numpy as np
import torch

from pathwise.errors import CheckpointError, first_sentence, one_line
from pathwise.policies.policy import Policy

CHECKPOINT_FORMAT = "pathwise-checkpoint"
POLICY_FORMAT = "pathwise-policy"
FORMAT_VERSION = 1
# (format found, format wanted) → which file to use instead.
WHICH_FILE = {
    (CHECKPOINT_FORMAT, POLICY_FORMAT): " but a training checkpoint; a policy is the run's "
                                        "policy.pt or checkpoints/best.pt",
    (POLICY_FORMAT, CHECKPOINT_FORMAT): " but a saved policy; use the run directory or its "
                                        "checkpoints/last.pt",
}


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``.

    A crash mid-write leaves the previous file intact: ``os.replace`` is atomic on POSIX
    when source and target are on the same filesystem. The file is created with mode 0o666
    less the umask, as ``open`` would (``tempfile.mkstemp`` would make it owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
        reason = first_sentence(err) if isinstance(err, (RuntimeError, OSError)) \
            else "not readable as a torch.save file"
        raise CheckpointError(f"{path}: corrupt or truncated file ({reason})") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, dict) else None
        raise CheckpointError(f"{path}: not a {expected_format} file" + WHICH_FILE.get(
            (found, expected_format), ""))
    if obj.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {obj.get('version')} is not supported "
            f"(this pathwise reads version {FORMAT_VERSION})"
        )
    return obj


def _refusal(err: BaseException) -> str:
    """What torch's weights_only unpickler refused ("unsupported GLOBAL posix.system …"),
    without its advice to load the file unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(("Weights only load failed",
                                                              "Check the documentation"))]
    return first_sentence(reasons[0]) if reasons else "unsupported content"


def save_policy(policy: Policy, path: str | Path, state_dict: dict | None = None,
                **metadata) -> None:
    """The policy alone: its constructor spec and weights (``state_dict``, default its
    current ones), plus metadata (env id, agent, step…)."""
    state = {k: v.detach().cpu() for k, v in (state_dict or policy.state_dict()).items()}
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


# -- training checkpoints -------------------------------------------------------------------
# What resuming a run reads from its training checkpoint.
CHECKPOINT_KEYS = ("config", "global_step", "agent", "rng")


def save_checkpoint(path: str | Path, cfg, agent, global_step: int, **extra) -> None:
    """A training checkpoint at ``path``; ``extra`` (plain values and tensors: the elapsed
    ``time``, ``wandb_id``, the envs' state...) is stored beside the agent, so that a resumed
    run continues its clock, its wandb run and its episodes."""
    atomic_save({"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
                 "config": dataclasses.asdict(cfg), "global_step": global_step,
                 "agent": agent.state_dict(), "rng": rng_state(), **extra}, path)


def load_checkpoint(path: str | Path) -> dict:
    checkpoint = safe_load(path, CHECKPOINT_FORMAT)
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(missing)})")
    return checkpoint


def restore_agent(agent, checkpoint: dict, path: str | Path) -> None:
    """Load a checkpoint's agent state into ``agent``, or say in one line why it does not fit."""
    try:
        agent.load_state_dict(checkpoint["agent"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: does not fit this run ({one_line(err, 200)})") from None


def load_agent(target: str | Path, device: torch.device | str = "cpu"):
    """``(config, agent, global_step, checkpoint path)`` rebuilt from a run directory (its
    ``checkpoints/last.pt``) or a checkpoint file. Bad files raise ``CheckpointError``."""
    from pathwise.envs.make import make_vec_env
    from pathwise.training.config import as_train_config
    from pathwise.training.registry import build_agent

    path = Path(target)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    cfg = as_train_config(checkpoint["config"])
    cfg.device = str(device)
    envs = make_vec_env(cfg.env, cfg.num_envs, cfg.seed, device)
    try:
        agent = build_agent(cfg, envs, torch.device(device))
    finally:
        envs.close()
    restore_agent(agent, checkpoint, path)
    return cfg, agent, int(checkpoint.get("global_step", 0)), path


# -- random-number state ----------------------------------------------------------------------
def rng_state() -> dict:
    """The global random states of torch (and CUDA), numpy and Python, complete, as tensors
    and plain values (what ``weights_only`` loading accepts)."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
            "python": {"version": version, "state": list(words), "gauss_next": gauss_next},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict, path: str | Path = "checkpoint") -> None:
    """Restore what ``rng_state`` saved; an unreadable state is a one-line CheckpointError."""
    try:
        _set_rng_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its random-number state is unreadable "
                              f"({one_line(err, 200)})") from None


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state, python_state = state["numpy"], state["python"]
    if isinstance(numpy_state, dict):
        np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                             numpy_state["pos"], numpy_state["has_gauss"],
                             numpy_state["cached_gaussian"]))
        random.setstate((python_state["version"], tuple(python_state["state"]),
                         python_state["gauss_next"]))
    else:  # the first checkpoint layout: numpy keys as a list, Python's state as its repr
        np.random.set_state(("MT19937", np.asarray(numpy_state, dtype=np.uint32),
                             int(state["numpy_pos"]), 0, 0.0))
        random.setstate(ast.literal_eval(python_state))  # literals only: never runs code
    if state.get("cuda") and torch.cuda.is_available():
        # Saved on a machine with more GPUs than this one: restore the ones present.
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
