"""``param(default, help)``: a dataclass field whose one-line help becomes ``--help`` text."""

from __future__ import annotations

import dataclasses
from typing import Any


def param(default: Any, help: str) -> Any:
    """A dataclass field with a default (copied if mutable) and a one-line description."""
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        value = default
        factory = (lambda: dataclasses.replace(value)) if dataclasses.is_dataclass(value) \
            else (lambda: type(value)(value))
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def describe(cls, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted name, default, help)`` for every field of a config dataclass, recursively."""
    rows = []
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "???")
        if dataclasses.is_dataclass(default):
            rows += describe(type(default), name + ".")
        else:
            rows.append((name, repr(default), f.metadata.get("help", "")))
    return rows
