"""What every command shares: the argument parser, consoles, number parsing, durations."""

from __future__ import annotations

import argparse

from pathwise.errors import UsageError

PROG = "pathwise"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a variance needs two estimates), "
                                         f"got {value}")
    return value


def console(stderr: bool = False):
    """A rich console; not on a terminal (a pipe, a file, a test), a wide one, so that tables
    of paths are never folded or cut at 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=200)


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"
