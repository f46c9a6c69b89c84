"""Keep a benchmark of another xenlu package honest: import only that package.

``benchmarks/run.py --xenlu DIR`` puts ``DIR`` first on ``sys.path`` and this
directory on ``PYTHONPATH``, so every process of the run (the row children and
the CLI subprocesses) imports this module at start-up. An editable install of
the repository (``pip install -e .``) adds a meta-path finder that serves
``xenlu.<name>`` from the repository for any ``<name>`` the package under test
lacks; a revision without ``xenlu/feed/decoder.py`` would otherwise run the
repository's ``feed.py`` over its own modules (a mix of two revisions). With
the finder gone, a module the package lacks is a ``ModuleNotFoundError``, and
``benchmarks/compare.py`` reports the row as not in that revision.
"""

import sys

sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable___xenlu")
]


def _old_layout() -> None:
    """A package from before the subpackage move (no ``xenlu/core/``): serve
    the new module paths ``run.py`` imports from its old modules. Which
    package is under test is known only once ``run.py`` has put it on
    ``sys.path``, so the finder decides at each import (see ``old_layout``)."""
    from old_layout import OldLayout  # this directory is on sys.path

    sys.meta_path.insert(0, OldLayout())


_old_layout()
