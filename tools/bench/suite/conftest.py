"""Runs every test of the suite inside one session harness, picked by an env var.

PREFECT_TESTKIT_BENCH_HARNESS=toolkit uses the pytest plugin's ``prefect_harness``
fixture (or the core harness if the plugin is not installed); ``prefect`` uses
``prefect.testing.utilities.prefect_test_harness`` as Prefect's docs suggest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

HARNESS = os.environ.get("PREFECT_TESTKIT_BENCH_HARNESS", "toolkit")
if HARNESS not in ("toolkit", "prefect"):
    raise pytest.UsageError(f"PREFECT_TESTKIT_BENCH_HARNESS={HARNESS!r}: use toolkit or prefect")


@pytest.fixture(autouse=True, scope="session")
def _bench_harness(request: pytest.FixtureRequest) -> Iterator[None]:
    if HARNESS == "prefect":
        from prefect.testing.utilities import prefect_test_harness

        # 120 s, not the default 30: with -n 2 on a busy machine Prefect's two servers
        # can take longer than 30 s to start, and a startup error measures nothing.
        with prefect_test_harness(server_startup_timeout=120):
            yield
        return
    if request.config.pluginmanager.has_plugin("prefect_testkit"):
        request.getfixturevalue("prefect_harness")
        yield
        return
    from prefect_testkit import prefect_test_harness as toolkit_harness

    with toolkit_harness(server_startup_timeout=120):
        yield
