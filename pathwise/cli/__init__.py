"""``pathwise train | eval | compare | diagnose | lab``: the command line.

Exit codes: 0 success; 1 a runtime failure (training diverged, a missing dependency, a bug);
2 a usage error (bad override, unknown key or env, missing or unreadable file); 130 Ctrl-C.
Errors are one line on stderr; ``--debug`` (or ``HYDRA_FULL_ERROR=1``) shows the traceback.

Heavy modules (torch, Hydra, wandb, matplotlib) are imported inside the commands, so that
``pathwise --help`` and ``pathwise --version`` answer at once.
"""

from __future__ import annotations

import importlib
import os
import sys

from pathwise import __version__
from pathwise.cli.common import PROG
from pathwise.errors import exit_code, is_expected, one_line

# command -> its module (pathwise.cli.<module>), imported only when the command runs.
COMMANDS = {"train": "train", "eval": "eval", "compare": "compare", "diagnose": "diagnose",
            "lab": "lab"}

TOP_HELP = f"""\
usage: {PROG} [--version] [--help] COMMAND [ARGS]

Policy-gradient estimators (pathwise, score function, exact) on Gymnasium tasks.

commands:
  train     train an agent: {PROG} train [OVERRIDES]   e.g. env=CartPole-v1 estimator=score
  eval      evaluate a saved policy: {PROG} eval RUN_DIR|POLICY_FILE
  compare   aggregate runs over seeds, plot learning curves: {PROG} compare RUN_DIR...
  diagnose  gradient variance, SNR and bias of every estimator at a checkpoint:
            {PROG} diagnose RUN_DIR
  lab       textbook estimator results, reproduced and checked: {PROG} lab --out DIR;
            a VAE trained with each estimator: {PROG} lab vae --latent categorical

options:
  -h, --help   show this message; `{PROG} COMMAND --help` describes a command
  --version    print the version
  --debug      show the full traceback of an error (also HYDRA_FULL_ERROR=1)

quickstart:
  {PROG} train                  SAC, pathwise estimator, Pendulum-v1, 20k steps
  {PROG} eval runs/<that run>
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pathwise`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(TOP_HELP, end="")
        return 0
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{PROG}: error: unknown command {command!r}; choose from "
              f"{', '.join(COMMANDS)} (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(f"pathwise.cli.{COMMANDS[command]}").main(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        message = one_line(err) or type(err).__name__
        if not is_expected(err):  # a bug, not a mistake of the user's
            message = f"{type(err).__name__}: {message} (rerun with --debug for the traceback)"
        print(f"{PROG} {command}: error: {message}", file=sys.stderr)
        return exit_code(err)


if __name__ == "__main__":
    sys.exit(main())
