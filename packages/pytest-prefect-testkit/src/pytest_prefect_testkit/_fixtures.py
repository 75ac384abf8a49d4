"""The fixtures: the session harness, database isolation, API clients and run-log capture."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_prefect_testkit._options import DISABLE_FLAG
from pytest_prefect_testkit._session import get_manager

# Prefect is imported inside the fixtures, when a test first needs it: never at plugin load.
if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient

    from prefect_testkit import HarnessHandle
    from prefect_testkit_logging import PrefectLogCapture

ISOLATED_MARKER = "prefect_isolated"


@pytest.fixture(scope="session")
def prefect_harness(request: pytest.FixtureRequest) -> Iterator[HarnessHandle]:
    """The session's Prefect test server and database (one per xdist worker), started lazily."""
    manager = get_manager(request.config)
    if manager.options.disabled:
        pytest.skip(f"needs the Prefect test harness, which {DISABLE_FLAG} turned off")
    handle = manager.start()
    manager.forgetters.append(_forgetter(request))
    try:
        yield handle
    finally:
        manager.stop()


def _forgetter(request: pytest.FixtureRequest) -> Callable[[], None]:
    """A callable that tears this session fixture down now, so that it runs again when next
    requested (as pytest does for a parametrized fixture whose parameter changed).

    pytest has no public call for this; ``FixtureDef.finish`` is the one it uses itself, and
    it also tears down every fixture that names this one as an argument. The plugin's
    death-restart tests fail if a pytest release changes it.
    """
    fixturedef = request._fixturedef  # type: ignore[attr-defined]
    return functools.partial(fixturedef.finish, request=request)


@pytest.fixture(scope="session", autouse=True)
def _prefect_harness_autouse(request: pytest.FixtureRequest) -> None:
    manager = get_manager(request.config)
    if manager.options.autouse and not manager.options.disabled:
        request.getfixturevalue("prefect_harness")
        # pytest does not tear this fixture down with the harness it asked for by name.
        manager.forgetters.append(_forgetter(request))


@pytest.fixture
def prefect_clean_db(
    request: pytest.FixtureRequest, prefect_harness: HarnessHandle
) -> HarnessHandle:
    """The session harness with its database emptied just before this test."""
    get_manager(request.config).reset_database()
    return prefect_harness


@pytest.fixture(autouse=True)
def _prefect_isolation(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker(ISOLATED_MARKER)
    if marker is None:
        return
    if marker.args or marker.kwargs:
        pytest.fail(
            f"@pytest.mark.{ISOLATED_MARKER} takes no arguments, got "
            f"args={marker.args!r} kwargs={marker.kwargs!r}; write @pytest.mark.{ISOLATED_MARKER}",
            pytrace=False,
        )
    request.getfixturevalue("prefect_clean_db")


@pytest.fixture
def prefect_client(prefect_harness: HarnessHandle) -> Iterator[PrefectClient]:
    """An async ``PrefectClient`` for the session harness, usable in any event loop.

    A plain (synchronous) fixture, so it works under every pytest-asyncio mode and loop
    scope and without pytest-asyncio at all. Connections are not kept alive, so the
    client holds nothing tied to the loop it was started in: each request opens its
    connection in the loop that awaits it.
    """
    import httpx
    from prefect import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    client = get_client(
        httpx_settings={"limits": httpx.Limits(max_connections=16, max_keepalive_connections=0)}
    )
    # On Prefect's own loop thread: this thread may be running a loop already (a fixture
    # requested by an async test), and asyncio.run() here would unset the loop that
    # pytest-asyncio made current for module- or session-scoped tests.
    run_coro_as_sync(client.__aenter__())
    try:
        yield client
    finally:
        run_coro_as_sync(client.__aexit__(None, None, None))


@pytest.fixture
def sync_prefect_client(prefect_harness: HarnessHandle) -> Iterator[SyncPrefectClient]:
    """A ``SyncPrefectClient`` for the session harness."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        yield client


@pytest.fixture
def prefect_logs() -> Iterator[PrefectLogCapture]:
    """Flow and task run log records emitted during this test (``capture_prefect_logs()``)."""
    from prefect_testkit_logging import capture_prefect_logs

    with capture_prefect_logs() as capture:
        yield capture
