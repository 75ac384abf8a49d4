"""The conftest that Prefect's testing docs recommend, with only the import swapped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect_testkit import HarnessHandle, prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_test_fixture() -> Iterator[HarnessHandle]:
    with prefect_test_harness() as harness:
        yield harness
