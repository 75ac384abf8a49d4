"""Fail a pytest session whose swapped-in harness was never entered, with xdist too.

Under ``-n 2`` the controller collects but runs nothing: each worker reports how often it
entered the harness (xdist's ``workeroutput``) and the controller adds them up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

KEY = "prefect_testkit_bench_entered"


class EnteredCheck:
    """A pytest plugin object: ``count()`` is how often this process entered the harness."""

    def __init__(self, count: Callable[[], int], message: str) -> None:
        self.count = count
        self.message = message
        self.by_workers = 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        self.by_workers += getattr(node, "workeroutput", {}).get(KEY, 0)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: its controller decides
            workeroutput[KEY] = self.count()
        elif self.count() + self.by_workers == 0 and session.testscollected:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            print(f"\n{self.message}")
