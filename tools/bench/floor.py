"""pytest plugin: the suite's Prefect harness becomes a no-op on a server already running.

    PYTHONPATH=tools pytest -p bench.floor ...   (with PREFECT_TESTKIT_BENCH_FLOOR set)

The free-harness floor of the real-suites workload: what a suite costs when entering the
harness costs nothing. Like the drop-in (tools/compat/dropin.py), it replaces the name in
``prefect.testing.utilities`` before any conftest.py imports it, so the suite's files stay
as they are. The no-op does what the toolkit's harness does in the test process, with a
server that the bench started and keeps warm (its database emptied between runs) instead
of one of its own: the toolkit's client defaults (no flow heartbeats, no server version
check) and client settings (API URL and auth string, for this process and its children),
and on exit the logs and events still buffered sent (as Prefect's harness does too).
xdist worker N takes server N. The session fails if the no-op was never entered.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

# A JSON list of {"api_url": ..., "api_auth_string": ...}, one per xdist worker.
SERVERS_ENV = "PREFECT_TESTKIT_BENCH_FLOOR"

entered = 0


def _server() -> dict[str, Any]:
    servers: list[dict[str, Any]] = json.loads(os.environ[SERVERS_ENV])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ...
    return servers[int(worker.removeprefix("gw")) % len(servers)]


@contextlib.contextmanager
def free_harness(*args: Any, **kwargs: Any) -> Iterator[None]:
    """Stands in for prefect_test_harness(...): its arguments are accepted and ignored."""
    import httpx
    import prefect.settings

    # The toolkit's own settings and drain, not copies that could drift from its harness.
    from prefect_testkit._prefect import _client_defaults, client_settings
    from prefect_testkit_logging import drain_workers

    global entered
    server = _server()
    port = httpx.URL(server["api_url"]).port
    assert port is not None, server["api_url"]  # the toolkit's URLs name their port
    with contextlib.ExitStack() as stack:
        stack.enter_context(prefect.settings.temporary_settings(updates=_client_defaults()))
        stack.enter_context(client_settings(server["api_url"], server["api_auth_string"], port))
        entered += 1
        yield
        drain_workers()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    """Swap the harness before the suite's conftest.py runs `from ... import`."""
    import prefect.testing.utilities

    if SERVERS_ENV not in os.environ:
        raise pytest.UsageError(f"bench.floor: {SERVERS_ENV} is not set")
    prefect.testing.utilities.prefect_test_harness = free_harness


def pytest_configure(config: pytest.Config) -> None:
    # Here, not at the top: the bench imports this module (as `floor`) for its variable.
    from bench.entered import EnteredCheck

    message = "bench floor: the no-op harness was never entered"
    config.pluginmanager.register(EnteredCheck(lambda: entered, message))


def pytest_report_header() -> str:
    return f"bench floor: prefect_test_harness is a no-op on {_server()['api_url']}"
