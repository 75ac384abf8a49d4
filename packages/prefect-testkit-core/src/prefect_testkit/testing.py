"""Helpers for testing code that uses the toolkit: the toolkit's own test suites use them,
and so can yours (to skip PostgreSQL tests on a machine without PostgreSQL, say).

Importing this module imports no Prefect.
"""

from __future__ import annotations

import os

from prefect_testkit._errors import HarnessConfigError, HarnessStartupError
from prefect_testkit._postgres.binaries import find_binaries
from prefect_testkit.config import POSTGRES_URL_ENV

__all__ = ["postgres_unavailable"]


def postgres_unavailable() -> str | None:
    """Why no PostgreSQL harness can start here, or None when one can.

    For ``pytest.mark.skipif(postgres_unavailable() is not None, reason=...)``: a harness
    can use the server named in ``PREFECT_TESTKIT_POSTGRES_URL``, or else a local cluster
    of PostgreSQL's installed server binaries.
    """
    if os.environ.get(POSTGRES_URL_ENV, "").strip():
        return None
    if "TEST_SRCDIR" in os.environ and os.geteuid() == 0:
        return "Bazel's sandbox cannot hand a local cluster to another user (run under nox)"
    try:
        find_binaries()
    except (HarnessStartupError, HarnessConfigError) as exc:
        return f"no PostgreSQL server to test against: {exc}"
    return None
