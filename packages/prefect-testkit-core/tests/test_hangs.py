"""A server that hangs, at startup or while the harness exits: the error says where.

The hangs are real: a ``sitecustomize`` on the server's PYTHONPATH makes its import of
uvicorn, or one of Prefect's route handlers, wait forever. This test process started
before that directory was on its path, so only the processes it starts are affected,
and a route hangs only in a server whose environment names it (``TESTKIT_HANG``).
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import prefect.settings
import psutil
import pytest
from conftest import STARTUP_TIMEOUT, wait_until_gone
from prefect import flow, get_run_logger

from prefect_testkit import (
    HarnessConfigError,
    HarnessHandle,
    HarnessStartupError,
    HarnessTeardownError,
    HarnessTeardownWarning,
    prefect_test_harness,
)
from prefect_testkit._sqlite.template import cache_dir
from prefect_testkit_xdist import list_leases

MODE_ENV = "TESTKIT_HANG"
FACTORY_ENV = "PREFECT_TESTKIT_SERVER_FACTORY"
TEARDOWN_ENV = "PREFECT_TESTKIT_TEARDOWN_TIMEOUT"
# Long enough for a spawned server to reach its import of uvicorn on a loaded machine.
IMPORT_TIMEOUT = 5.0
# Long enough for a forked server to answer on a loaded machine.
HEALTH_TIMEOUT = 8.0
TEARDOWN_TIMEOUT = 3.0
# What a failure may take beyond its bound: the stack dump (at most 2 s), stopping the
# server (up to 5 s of grace for a server that hangs in a request), one retry of
# Prefect's client against the tombstone (2 s back-off plus jitter), and a loaded CI box.
SLACK = 9.0

SITECUSTOMIZE = textwrap.dedent(
    '''
    """Loaded by every Python started with this directory on PYTHONPATH."""
    import asyncio
    import importlib.machinery
    import os
    import sys
    import time

    MODE_ENV = "TESTKIT_HANG"
    # The route handler (by function name) that hangs in each mode.
    HANDLERS = {"health": "health_check", "logs": "create_logs"}


    def hang_forever_importing(name):
        while True:
            time.sleep(3600)


    def hang_when_asked(endpoint, mode):
        async def hang_forever_handling_request(**kwargs):
            # Read per request: a factory loads this once, its servers get their own env.
            if os.environ.get(MODE_ENV) == mode:
                await asyncio.Event().wait()
            return await endpoint(**kwargs)

        hang_forever_handling_request.__wrapped__ = endpoint  # FastAPI reads its signature
        return hang_forever_handling_request


    def patch_routes(routing):
        add_api_route = routing.APIRouter.add_api_route
        modes = {name: mode for mode, name in HANDLERS.items()}

        def add_hanging_route(self, path, endpoint, **kwargs):
            mode = modes.get(getattr(endpoint, "__name__", None))
            if mode is not None:
                endpoint = hang_when_asked(endpoint, mode)
            return add_api_route(self, path, endpoint, **kwargs)

        routing.APIRouter.add_api_route = add_hanging_route


    class HangingImports:
        def find_spec(self, name, path=None, target=None):
            if name == "uvicorn" and os.environ.get(MODE_ENV) == "import":
                hang_forever_importing(name)
            if name != "fastapi.routing":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                patch_routes(module)

            spec.loader.exec_module = exec_and_patch
            return spec


    sys.meta_path.insert(0, HangingImports())
    '''
)

SETTINGS = (
    prefect.settings.PREFECT_API_URL,
    prefect.settings.PREFECT_HOME,
    prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL,
)


@flow
def chatty_flow() -> None:
    get_run_logger().info("a line the server will never store")


@pytest.fixture(scope="module")
def hang_hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The hooks on PYTHONPATH, and a server factory of this module's own that loaded them.

    The factory gets a lock directory of its own (the shared factory never saw the
    hooks); the template cache stays the shared one, so no server migrates. It is
    started once, by a harness that does not hang, and stopped at the end.
    """
    hooks = tmp_path_factory.mktemp("hooks")
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    python_path = os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_TESTKIT_CACHE_DIR", str(cache_dir()))
        patch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        patch.setenv("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "600")  # stopped below
        patch.setenv("PYTHONPATH", python_path)
        with prefect_test_harness(STARTUP_TIMEOUT) as harness:
            assert harness.server_forked
            factory = psutil.Process(harness.server_pid).parent()
        assert factory is not None
        yield
    factory.terminate()
    assert wait_until_gone(factory.pid), "the module's server factory did not stop"


def our_leases() -> list[str]:
    return sorted(lease.resource for lease in list_leases() if lease.pid == os.getpid())


@pytest.fixture
def leftovers() -> Iterator[None]:
    """Asserts that the test leaves no child process, lease or changed setting behind."""
    settings = [setting.value() for setting in SETTINGS]
    children = psutil.Process().children(recursive=True)
    leases = our_leases()
    yield
    assert psutil.Process().children(recursive=True) == children
    assert our_leases() == leases
    assert [setting.value() for setting in SETTINGS] == settings


def stacks_in(message: str, heading: str) -> str:
    assert heading in message, message
    return message.split(heading, 1)[1]


def assert_directory_removed(message: str) -> None:
    directory = Path(message.split("  directory: ", 1)[1].split(" (removed on exit")[0])
    assert directory.name, message
    assert not directory.exists(), f"{directory} left behind"


@pytest.mark.usefixtures("hang_hooks", "leftovers")
def test_a_server_hung_in_an_import_fails_with_its_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FACTORY_ENV, "false")  # spawned: the import happens in the child
    monkeypatch.setenv(MODE_ENV, "import")
    started = time.monotonic()
    with pytest.raises(HarnessStartupError) as caught, prefect_test_harness(IMPORT_TIMEOUT):
        pytest.fail("a server that hangs in an import became healthy")
    took = time.monotonic() - started

    message = str(caught.value)
    assert f"timed out after {IMPORT_TIMEOUT:g} s" in message
    stacks = stacks_in(message, "the server's stacks at the timeout:")
    # faulthandler's lines: the hanging function, and the harness's code that called it.
    assert "in hang_forever_importing" in stacks
    assert "_server/app.py" in stacks
    assert "in serve" in stacks
    assert took < IMPORT_TIMEOUT + SLACK, f"took {took:.1f} s"
    assert_directory_removed(message)


@pytest.mark.usefixtures("hang_hooks", "leftovers")
def test_a_server_hung_in_its_health_route_fails_with_the_handler_in_its_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MODE_ENV, "health")
    started = time.monotonic()
    with pytest.raises(HarnessStartupError) as caught, prefect_test_harness(HEALTH_TIMEOUT):
        pytest.fail("a server whose health route hangs became healthy")
    took = time.monotonic() - started

    message = str(caught.value)
    assert f"timed out after {HEALTH_TIMEOUT:g} s" in message
    stacks = stacks_in(message, "the server's stacks at the timeout:")
    # The handler awaits: it is in no thread's stack, only in its asyncio task's.
    assert "in hang_forever_handling_request" in stacks
    assert "in run_endpoint_function" in stacks  # FastAPI's call of the route handler
    assert took < HEALTH_TIMEOUT + SLACK, f"took {took:.1f} s"
    assert_directory_removed(message)


@pytest.mark.usefixtures("hang_hooks", "leftovers")
def test_a_teardown_stuck_on_a_hung_route_is_bounded_and_says_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MODE_ENV, "logs")
    with ExitStack() as stack:
        harness = stack.enter_context(
            prefect_test_harness(STARTUP_TIMEOUT, teardown_timeout=TEARDOWN_TIMEOUT)
        )
        chatty_flow()
        leaving = time.monotonic()
        with pytest.raises(HarnessTeardownError) as caught:
            stack.close()
    took = time.monotonic() - leaving

    message = str(caught.value)
    assert f"took longer than {TEARDOWN_TIMEOUT:g} s" in message
    assert "stuck draining Prefect's log and event workers into the server" in message
    ours = stacks_in(message, "this process's threads")
    assert "in drain_workers" in ours
    theirs = stacks_in(message, "the server's stacks")
    assert "in hang_forever_handling_request" in theirs
    assert took < TEARDOWN_TIMEOUT + SLACK, f"took {took:.1f} s"
    assert wait_until_gone(harness.server_pid, within=0.5)
    assert not harness.directory.exists()


def fail_in_a_harness(entered: list[HarnessHandle]) -> None:
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        entered.append(harness)
        chatty_flow()
        raise ValueError("the test's own failure")


@pytest.mark.usefixtures("hang_hooks", "leftovers")
def test_a_stuck_teardown_never_replaces_the_bodys_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Even where warnings are errors, the body's exception is the one that propagates."""
    monkeypatch.setenv(TEARDOWN_ENV, str(TEARDOWN_TIMEOUT))
    monkeypatch.setenv(MODE_ENV, "logs")
    entered: list[HarnessHandle] = []
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="the test's own failure"):
            fail_in_a_harness(entered)

    [warning] = [w for w in caught_warnings if w.category is HarnessTeardownWarning]
    assert "stuck draining Prefect's log and event workers" in str(warning.message)
    assert "in hang_forever_handling_request" in str(warning.message)
    [harness] = entered
    assert wait_until_gone(harness.server_pid, within=0.5)
    assert not harness.directory.exists()


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({"teardown_timeout": 0}, None, "teardown_timeout must be a positive, finite"),
        ({"teardown_timeout": float("inf")}, None, "got inf"),
        ({"teardown_timeout": "3"}, None, "got '3' (str); pass e.g. teardown_timeout=30"),
        ({}, "soon", f"{TEARDOWN_ENV}='soon' must be a number of seconds"),
        ({}, "-1", f"{TEARDOWN_ENV}='-1' must be a positive, finite number of seconds"),
        ({}, "nan", f"set e.g. {TEARDOWN_ENV}=30"),
    ],
)
def test_a_bad_teardown_timeout_is_rejected_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], env: str | None, expected: str
) -> None:
    if env is not None:
        monkeypatch.setenv(TEARDOWN_ENV, env)
    children = psutil.Process().children(recursive=True)
    with pytest.raises(HarnessConfigError) as caught, prefect_test_harness(**kwargs):  # type: ignore[arg-type]
        pytest.fail("the harness accepted a bad teardown timeout")
    assert expected in str(caught.value)
    assert psutil.Process().children(recursive=True) == children


def test_the_dump_signal_leaves_a_healthy_server_serving() -> None:
    """The signal only writes stacks: a server that gets it (forked, here) keeps working."""
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        os.kill(harness.server_pid, signal.SIGUSR1)
        chatty_flow()
        assert harness.server_returncode is None
        assert "(most recent call first)" in harness.log_tail(200)
