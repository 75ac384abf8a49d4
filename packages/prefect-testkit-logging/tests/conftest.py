from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefect_testkit import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real temporary Prefect API server for the whole session (it takes seconds to
    start). Tests that run flows request it; the call_fn tests do not need it."""
    # Generous: on a loaded 2-core machine the default 30 s is not always enough.
    with prefect_test_harness(server_startup_timeout=120):
        yield
