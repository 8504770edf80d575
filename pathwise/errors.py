"""Errors a user can cause or meet, each with a one-line message and the exit code the CLI
returns for it. Anything else that reaches the command line is a bug: exit 1 and a hint to
rerun with ``--debug``.

This module imports nothing from pathwise, so every layer (envs, policies, agents, the
framework) can raise these without an import cycle.
"""

from __future__ import annotations


class PathwiseError(Exception):
    """Base class; ``exit_code`` is what ``pathwise`` exits with when one reaches the CLI."""

    exit_code = 1


# -- exit 2: the command cannot run as written ----------------------------------------------
class UsageError(PathwiseError, ValueError):
    """A command line or argument that cannot run as written."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration value."""


class EnvError(UsageError):
    """A problem with the requested env (unknown id, unsupported spaces, bad kwargs)."""


class EnvStateError(EnvError):
    """A saved vector-env state that cannot be rebuilt exactly."""


class CheckpointError(UsageError):
    """A checkpoint or policy file that cannot be used (not ours, damaged, incompatible)."""


class CompareError(UsageError):
    """Runs that cannot be compared as asked."""


class RunLockedError(UsageError):
    """A run directory that another process is writing to."""


# -- exit 1: the command ran and could not finish -------------------------------------------
class TrainingError(PathwiseError, RuntimeError):
    """Training stopped (a non-finite loss or parameter, ...); what was trained is kept."""


class DependencyError(PathwiseError, RuntimeError):
    """An optional dependency that the command needs is not installed."""


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut to
    ``limit`` characters: how an error message reaches the user."""
    line = " ".join(str(text).split())
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def first_sentence(text: object, limit: int = 160) -> str:
    """The first sentence of ``text`` on one line: for a third-party error whose later
    sentences are advice that does not apply here."""
    return one_line(text).split(". ")[0][:limit]


def exit_code(err: BaseException) -> int:
    """The exit code for ``err``: its class's, 2 for a missing file, else 1."""
    if isinstance(err, PathwiseError):
        return err.exit_code
    if isinstance(err, FileNotFoundError):
        return 2
    return 1


def is_expected(err: BaseException) -> bool:
    """Whether ``err`` carries a message for the user (else it is a bug, shown with a hint)."""
    return isinstance(err, (PathwiseError, FileNotFoundError))
