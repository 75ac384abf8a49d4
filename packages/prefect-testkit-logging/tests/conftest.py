from __future__ import annotations

from collections.abc import Iterator

import pytest

try:
    # The project's own harness, once packages/prefect-testkit-core is installed.
    from prefect_testkit import prefect_test_harness
except ImportError:  # pragma: no cover - depends on what is installed
    # Prefect's own is the same call with a narrower signature.
    from prefect.testing.utilities import (  # type: ignore[assignment]
        prefect_test_harness,
    )


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real temporary Prefect API server for the whole session (it takes seconds to
    start). Tests that run flows request it; the call_fn tests do not need it."""
    # Generous: on a loaded 2-core machine the default 30 s is not always enough.
    with prefect_test_harness(server_startup_timeout=120):
        yield
