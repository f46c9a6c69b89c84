"""``python -m xenlu``: the command line."""

import sys

from xenlu.cli import main

sys.exit(main())
