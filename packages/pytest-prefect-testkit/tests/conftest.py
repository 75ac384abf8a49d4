from __future__ import annotations

import re
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

# In-process pytester runs drop every module first imported during the run. The plugin
# imports Prefect lazily, so each run would import a second copy of Prefect beside objects
# of the first (a Flow of one copy is no Flow to the other): import once, for every run,
# what the inner suites use, as a suite's own conftest would.
import prefect.client.orchestration
import prefect.main  # noqa: F401
import pytest

import prefect_testkit_logging
from prefect_testkit import prefect_test_harness  # noqa: F401
from prefect_testkit_xdist import list_leases
from pytest_prefect_testkit._home import MANAGED_VARIABLES

for _name in prefect_testkit_logging.__all__:
    getattr(prefect_testkit_logging, _name)  # loads the module behind each name

# The machine is shared with other engineers' servers and benchmarks: starts of 40 s and
# more have been seen, so the inner suites allow far more than the 30 s default.
STARTUP = "--prefect-startup-timeout=240"

# Prefect's own async flow engine leaves a client socket open when a pytest-asyncio loop
# closes (reproduced with the core harness alone, without this plugin), and Prefect 3.0's
# sync Variable.set leaves a transport open (with its own harness too); neither is ours.
# Prefect 3.1-3.3 with pydantic-settings 2.11+ warn on import; Prefect's, not ours.
PREFECT_3_1_SETTINGS = (
    "ignore:Config key `.*` is set in model_config but will be ignored:UserWarning"
)
PREFECT_SOCKET_LEAK = (
    "ignore:Exception ignored in. <(socket.socket|function _SelectorTransport.__del__)"
    ":pytest.PytestUnraisableExceptionWarning"
)


def pyproject(
    pytester: pytest.Pytester,
    *lines: str,
    asyncio_mode: str | None = "strict",
) -> None:
    """Write the inner suite's configuration: strict markers, warnings are errors.

    ``asyncio_mode=None`` writes no pytest-asyncio settings (for runs with it disabled).
    """
    body = [
        "[tool.pytest.ini_options]",
        'addopts = ["--strict-markers", "-p", "no:cacheprovider"]',
        f'filterwarnings = ["error", "{PREFECT_SOCKET_LEAK}", "{PREFECT_3_1_SETTINGS}"]',
    ]
    if asyncio_mode is not None:
        body += [
            f'asyncio_mode = "{asyncio_mode}"',
            'asyncio_default_fixture_loop_scope = "function"',
        ]
    body += list(lines)
    pytester.makefile(".toml", pyproject="\n".join(body) + "\n")


FLOWS = textwrap.dedent(
    """
    from prefect import flow, get_run_logger, task


    @task
    def double(x: int) -> int:
        get_run_logger().info("doubling %d", x)
        return 2 * x


    @flow
    def make(x: int) -> int:
        get_run_logger().info("made %d", x)
        return double(x)


    @flow
    async def amake(x: int) -> int:
        get_run_logger().info("async made %d", x)
        return x
    """
)


PRIVATE_HOME_LINE = re.compile(
    r"^prefect-testkit: Prefect home: (\S+) \(private, removed after the session\)$",
    re.MULTILINE,
)


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, and none of the variables this session's own plugin set."""
    home = tmp_path / "user-home"
    home.mkdir()
    for name in MANAGED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port where a developer's server or Prefect Cloud would be: it never accepts, so a
    connection attempt stays in the backlog for `connections` to find."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = sock.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def private_home(output: str) -> Path:
    found = PRIVATE_HOME_LINE.search(output)
    assert found is not None, output
    return Path(found.group(1))


def assert_removed(home: Path) -> None:
    assert not home.exists()
    assert [lease for lease in list_leases() if lease.path == home] == []
