"""The conftest that Prefect's testing docs recommend, with only the import swapped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefect_testkit import HarnessHandle, prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_test_fixture() -> Iterator[HarnessHandle]:
    with prefect_test_harness() as harness:
        yield harness


_harnesses: list[HarnessHandle] = []


@pytest.fixture(autouse=True, scope="session")
def _remember_harness(prefect_test_fixture: HarnessHandle) -> None:
    _harnesses.append(prefect_test_fixture)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for harness in _harnesses:
        terminalreporter.write_line(
            f"prefect-testkit: server {harness.api_url} (pid {harness.server_pid}), "
            f"database {harness.database_file}, healthy after {harness.startup_seconds:.1f} s"
        )
