"""Metric sinks. Every event is one flat dict with ``global_step`` and ``time``.

* ``JsonlWriter``: ``metrics.jsonl`` in the run directory, always.
* ``WandbRun``: a Weights & Biases run whose files live in the run directory. ``wandb`` is
  imported only when one is created, so ``wandb.mode=disabled`` runs no wandb code at all (and
  the CLI starts without paying for the import).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from pathwise.errors import ConfigError


class JsonlWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes it, so a crash
    loses at most the line being written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, record: dict) -> None:
        self._file.write(json.dumps(_finite(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _finite(record: dict) -> dict:
    """NaN and ±inf as None: JSON has no spelling for them."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()}


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl``; a partial last line (a crash mid-write) is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


# -- wandb ----------------------------------------------------------------------------------
def open_wandb_run(mode: str, *, project: str = "pathwise", entity: str | None = None,
                   option: str = "--wandb ", **fields) -> WandbRun | None:
    """The one place a wandb run is opened (training, ``eval --wandb``, ``compare --wandb``).

    None for ``mode="disabled"``: then no wandb code runs at all. ``online`` without
    credentials is a one-line ``ConfigError`` before anything starts. ``fields`` are
    ``WandbRun``'s: group, job_type, tags, config, run_dir, name, run_id; ``option`` names
    the setting a user changes for another mode.
    """
    check_wandb_mode(mode, option)
    if mode == "disabled":
        return None
    return WandbRun(mode=mode, project=project, entity=entity, **fields)


def check_wandb_mode(mode: str, option: str = "wandb.mode=") -> None:
    """A one-line ``ConfigError`` for a mode that cannot run: unknown, or online without
    credentials (wandb would stop and prompt for an API key). ``option`` names the setting
    to change (``wandb.mode=`` in a config, ``--wandb `` on a command)."""
    if mode not in ("offline", "online", "disabled"):
        raise ConfigError(f"{option}{mode}: the modes are offline, online and disabled")
    if mode == "online" and wandb_credentials_missing():
        raise ConfigError(f"{option}online needs W&B credentials: run `wandb login` (or set "
                          f"WANDB_API_KEY), or use {option}offline")


def wandb_credentials_missing() -> bool:
    """True when ``wandb.mode=online`` would have to prompt for an API key: none in
    ``WANDB_API_KEY``, in wandb's settings or in ``~/.netrc`` for the configured host."""
    if os.environ.get("WANDB_API_KEY"):
        return False
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings
        return not (settings.api_key or wbauth.read_netrc_auth(host=settings.base_url))
    except (ImportError, AttributeError, TypeError):  # wandb moved its internals: best effort
        import netrc

        try:
            auth = netrc.netrc().authenticators("api.wandb.ai")
        except (OSError, netrc.NetrcParseError):
            return True
        return auth is None


def artifact_name(*parts: str) -> str:
    """A wandb artifact name: alphanumerics, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts))


class WandbRun:
    """One wandb run, logging against ``global_step``.

    ``run_id`` resumes a run started earlier (its id is kept in the training checkpoint).
    """

    def __init__(self, *, mode: str, project: str, entity: str | None, group: str,
                 job_type: str, tags: list[str], config: dict, run_dir: str | Path,
                 name: str | None = None, run_id: str | None = None):
        # wandb advertises its LLM tracer (Weave) when it sees a package named like an LLM
        # SDK; nothing here is an LLM call.
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
        import wandb

        self._wandb = wandb
        # Quiet: the CLI prints its own progress and summary; "console=off" keeps wandb from
        # wrapping stdout, which would fight with the rich progress bar.
        settings = wandb.Settings(silent=True, console="off")
        self.run = wandb.init(project=project, entity=entity, group=group, job_type=job_type,
                              tags=tags, config=config, dir=str(run_dir), mode=mode, name=name,
                              id=run_id, resume="allow" if run_id else None, settings=settings)
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def dir(self) -> Path:
        """The run's own folder (``<run dir>/wandb/offline-run-…`` or ``run-…``)."""
        return Path(self.run.dir).parent

    def log(self, record: dict) -> None:
        self.run.log(_finite(record))

    def summary(self, values: dict) -> None:
        for key, value in values.items():
            self.run.summary[key] = value

    def log_table(self, key: str, columns: list[str], rows: list[list]) -> None:
        self.run.log({key: self._wandb.Table(columns=columns, data=rows)})

    def log_files(self, kind: str, paths: dict[str, Path]) -> None:
        """``kind``: "image" or "video"; ``paths``: key → file."""
        make = self._wandb.Image if kind == "image" else self._wandb.Video
        self.run.log({key: make(str(path)) for key, path in paths.items()})

    def log_model(self, path: Path, **metadata) -> None:
        """``policy.pt`` as a ``model`` artifact, one collection per (env, agent, estimator)."""
        artifact = self._wandb.Artifact(
            artifact_name("policy", metadata.get("env", ""), metadata.get("agent", ""),
                          metadata.get("estimator", "")),
            type="model", metadata=metadata,
            description="pathwise policy: pathwise.load_policy(path) → predict(obs)")
        artifact.add_file(str(path), name=Path(path).name)
        self.run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)
