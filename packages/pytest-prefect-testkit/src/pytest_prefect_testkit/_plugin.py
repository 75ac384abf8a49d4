"""The pytest plugin: a session-scoped Prefect harness per worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect_testkit import HarnessHandle, prefect_test_harness


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[HarnessHandle]:
    """One Prefect test server and database for the whole session (per xdist worker)."""
    with prefect_test_harness() as harness:
        yield harness
