"""``python -m xenlu``: the command line."""

import sys

from xenlu.cli.app import main

sys.exit(main())
