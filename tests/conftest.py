"""Test-suite configuration: hypothesis settings profiles.

Profiles (pick one with ``HYPOTHESIS_PROFILE``; default ``dev``):

* ``dev`` — quick (20 examples per property), for the edit-test loop;
* ``ci`` — deeper (100 examples), used by ``make test`` / ``make unit``; the property tests
  of ``tests/test_properties.py`` stay within about 90 s on 2 cores with it.

Both have no deadline (host generation and numpy warm-up make single
examples slow now and then on a loaded machine) and print the reproduction
blob of a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "dev", max_examples=20, deadline=None, print_blob=True, suppress_health_check=_QUIET
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, print_blob=True, suppress_health_check=_QUIET
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
