"""The run directory: where a run goes, what a new or resumed run may write there.

    config.yaml          resolved config            metrics.jsonl   one JSON object per event
    checkpoints/last.pt  full training state        checkpoints/best.pt  policy at best eval
    policy.pt            the final policy           evals.jsonl     one line per `pathwise eval`
    wandb/               the wandb run              .lock           held while a process trains
"""

from __future__ import annotations

import json
import os
import re
import warnings
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from pathwise.errors import ConfigError, RunLockedError
from pathwise.training.checkpoint import load_checkpoint
from pathwise.training.tracking import read_metrics

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

# Keys that must match between a checkpoint's config and the config that resumes it: they
# shape the networks or say what the run is.
RESUME_KEYS = ("env", "seed", "num_envs", "action_bins", "agent.name", "agent.hidden_sizes",
               "estimator.name")


def recorded(saved, key: str):
    """``key`` of a run's saved config (config.yaml or a checkpoint's); a key that config
    predates (action_bins) had its default then."""
    from pathwise.training.config import TrainConfig

    return OmegaConf.select(saved, key,
                            default=OmegaConf.select(OmegaConf.structured(TrainConfig), key))


def safe_name(text: str) -> str:
    """``text`` as one path component that every filesystem accepts: '/' and ':' (an env id's
    namespace and module prefix) and anything else outside [A-Za-z0-9._-] become '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def default_run_dir(cfg) -> Path:
    """``runs/<env>/<agent>-<estimator>/s<seed>-<timestamp>``, with a ``-2``, ``-3``… suffix
    when a run of the same second already has that name."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    env = safe_name(cfg.env)
    base = Path("runs") / env / f"{cfg.agent.name}-{cfg.estimator.name}" / f"s{cfg.seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def find_run_dir(cfg) -> tuple[Path, dict | None]:
    """The run directory and, on resume, the checkpoint to continue from. Nothing is created
    yet; a new run never reuses a non-empty directory."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if cfg.run_dir and Path(cfg.run_dir).resolve() != run_dir.resolve():
            raise ConfigError(f"resume={cfg.resume} continues in its own directory; "
                              f"drop run_dir={cfg.run_dir}")
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        saved = OmegaConf.create(checkpoint["config"])
        ours = OmegaConf.structured(cfg)
        for key in RESUME_KEYS:
            was = recorded(saved, key)
            if was != OmegaConf.select(ours, key):
                raise ConfigError(f"cannot resume {run_dir}: it was trained with {key}="
                                  f"{was}, this config has {OmegaConf.select(ours, key)}")
        if checkpoint["global_step"] >= cfg.total_steps:
            raise ConfigError(f"{run_dir} already reached step {checkpoint['global_step']} of "
                              f"total_steps={cfg.total_steps}; raise total_steps to continue")
        return run_dir, checkpoint
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"run_dir {run_dir} already exists and is not empty; "
                          f"choose another (it is never overwritten)")
    return run_dir, None


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory; an unwritable one fails here, before training starts."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to run_dir {run_dir}: {err.strerror or err}") from None


def truncate_metrics(path: Path, global_step: int) -> None:
    """Drop metric records past ``global_step`` (logged after the checkpoint we resume from),
    so the resumed run's curve has no duplicate steps."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("global_step", 0) <= global_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- one writer per run dir -------------------------------------------------------------------
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run directory, held for the life of a training process (a new
    run or a resume), so that two processes never write the same files.

    ``fcntl.flock``: the kernel drops the lock when its process exits, however it exits, so a
    lock left by a killed run is taken over (with a note naming the process that held it).
    The lock file holds the holder's pid, for the error a second writer gets. Where there is
    no ``fcntl`` (Windows) the lock is advisory only: it records the pid and checks nothing.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._file = None

    def acquire(self) -> RunLock:
        file = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(file)
                file.close()
                raise RunLockedError(
                    f"{self.path.parent} is being written by another process"
                    f"{f' (pid {holder})' if holder else ''}: wait for it to finish or stop "
                    f"it first; two writers would mix up the run") from None
        previous = _read_pid(file)
        if previous and previous != os.getpid() and not _alive(previous):
            warnings.warn(f"{self.path.parent}: took over the lock of process {previous}, "
                          f"which is gone", RuntimeWarning, stacklevel=2)
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()  # no pid left behind: nothing to take over
        self._file.flush()
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the process training in ``run_dir`` right now, or None."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    with open(path, encoding="utf-8") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(file) or -1
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    return None


def _read_pid(file) -> int | None:
    file.seek(0)
    text = file.read().strip()
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
