"""The run directory: where a run goes, what a new or resumed run may write there.

    config.yaml          resolved config            metrics.jsonl   one JSON object per event
    checkpoints/last.pt  full training state        checkpoints/best.pt  policy at best eval
    policy.pt            the final policy           evals.jsonl     one line per `pathwise eval`
    wandb/               the wandb run
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from pathwise.errors import ConfigError
from pathwise.training.checkpoint import load_checkpoint
from pathwise.training.tracking import read_metrics

# Keys that must match between a checkpoint's config and the config that resumes it: they
# shape the networks or say what the run is.
RESUME_KEYS = ("env", "seed", "num_envs", "agent.name", "agent.hidden_sizes", "estimator.name")


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
            if OmegaConf.select(saved, key) != OmegaConf.select(ours, key):
                raise ConfigError(f"cannot resume {run_dir}: it was trained with {key}="
                                  f"{OmegaConf.select(saved, key)}, this config has "
                                  f"{OmegaConf.select(ours, key)}")
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
