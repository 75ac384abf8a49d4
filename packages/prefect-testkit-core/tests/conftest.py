from __future__ import annotations

import base64
import time

import prefect
import psutil
import pytest
from prefect import flow, get_run_logger, task

from prefect_testkit import HarnessHandle
from prefect_testkit._prefect import API_AUTH_SUPPORTED

# Generous: a cold start (no template, no server factory) on a loaded 2-core machine,
# as under Bazel where every test target has its own lock directory, can take 30 s.
STARTUP_TIMEOUT = 120

# Prefect 3.0's sync Variable.set and create_markdown_artifact leave a client socket open,
# with its own harness too: a bug of that release, tolerated there only.
tolerates_prefect_3_0_socket_leaks = pytest.mark.filterwarnings(
    f"{'ignore' if prefect.__version__.startswith('3.0.') else 'error'}"
    "::pytest.PytestUnraisableExceptionWarning"
)

# Every later release leaks one in an async flow: results.py reads the server's default result
# storage with a sync client it never closes (3.1-3.9, with Prefect's harness too). The
# warning comes when the socket is collected, often in a later test of the module.
tolerates_prefect_async_flow_socket_leak = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


def wait_until_gone(pid: int, within: float = 10.0) -> bool:
    """True once no live process has ``pid`` (zombies count as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@task
def double(x: int) -> int:
    return 2 * x


@flow
def double_flow(x: int) -> int:
    result = double(x)
    get_run_logger().info("last words of double_flow(%d)", x)
    return result


def auth_headers(harness: HarnessHandle) -> dict[str, str]:
    """What Prefect's client sends: the harness's auth string as HTTP Basic credentials."""
    if not API_AUTH_SUPPORTED:  # Prefect 3.0: no auth string, an open API
        assert harness.api_auth_string is None
        return {}
    assert harness.api_auth_string is not None
    token = base64.b64encode(harness.api_auth_string.encode()).decode()
    return {"Authorization": f"Basic {token}"}
