"""``python -m pathwise``: the same as the ``pathwise`` command."""

import sys

from pathwise.cli import main

sys.exit(main())
