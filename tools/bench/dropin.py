"""pytest plugin: the compatibility matrix's drop-in (tools/compat/dropin.py), for xdist too.

    PYTHONPATH=tools pytest -p bench.dropin ...

Importing ``compat.dropin`` makes the swap (prefect_testkit's harness in place of
Prefect's, before any conftest.py imports it) and counts the entries. Its own check that
the harness was entered is left out (it is not registered as a plugin): it sees no entry in
an xdist controller, which runs no test. This one adds up the workers' entries.
"""

from __future__ import annotations

import pytest
from bench.entered import EnteredCheck
from compat import dropin


def pytest_configure(config: pytest.Config) -> None:
    message = "bench drop-in: prefect_testkit's harness was never entered"
    config.pluginmanager.register(EnteredCheck(lambda: dropin.entered, message))


def pytest_report_header() -> str:
    header: str = dropin.pytest_report_header()
    return header
