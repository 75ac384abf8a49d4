"""pytest plugin: the flow suite's Prefect harness becomes prefect-testkit's, without editing it.

    PYTHONPATH=tools pytest -p compat.dropin ...

The suite's conftest.py does what Prefect's testing docs show,
`from prefect.testing.utilities import prefect_test_harness`. A `-p` plugin is imported
before any conftest.py, so replacing the name in Prefect's module here hands the conftest
`prefect_testkit.prefect_test_harness`: the one-line swap a user makes, made from outside.
The session fails if the toolkit's harness was never entered (the swap came too late).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import prefect.testing.utilities
import pytest

from prefect_testkit import prefect_test_harness as toolkit_harness

entered = 0


@contextlib.contextmanager
def counted_harness(*args: Any, **kwargs: Any) -> Iterator[Any]:
    """prefect_testkit.prefect_test_harness, counting its uses."""
    global entered
    with toolkit_harness(*args, **kwargs) as handle:
        entered += 1
        yield handle


prefect.testing.utilities.prefect_test_harness = counted_harness  # type: ignore[assignment]


def pytest_report_header() -> str:
    return "compat drop-in: prefect.testing.utilities.prefect_test_harness is prefect_testkit's"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if entered == 0 and session.testscollected:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\ncompat drop-in: prefect_testkit's harness was never entered")
