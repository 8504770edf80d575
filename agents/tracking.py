"""Metric sinks. Every event is one flat dict with ``global_step`` and ``time``."""

from __future__ import annotations

import json
import math
from pathlib import Path


class JsonlWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes it, so a crash
    loses at most the line being written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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
