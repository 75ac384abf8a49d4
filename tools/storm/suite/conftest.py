"""Records, for the storm runner, which port and database each worker's harness used, and when.

When ``STORM_RECORD_DIR`` is set, every worker appends JSON lines to its own file there:
``harness`` once its harness is up, ``released`` once the harness's fixture has been torn
down (server stopped, leases released). The times bound the harness's life from outside:
``lease_after`` is taken before the plugin starts leasing and ``released_by`` after its
teardown, so a real overlap of two harnesses can never hide between the recorded times.
Without the variable the suite is an ordinary flow suite.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import psutil
import pytest

from prefect_testkit import HarnessHandle
from prefect_testkit_xdist import lock_dir

RECORD_DIR = os.environ.get("STORM_RECORD_DIR")
SESSION_ID = os.environ.get("STORM_SESSION_ID", "manual")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def _write(event: str, **fields: Any) -> None:
    if not RECORD_DIR:
        return
    line = {"event": event, "session": SESSION_ID, "worker": WORKER, "pid": os.getpid(), **fields}
    path = Path(RECORD_DIR) / f"{SESSION_ID}-{WORKER}-{os.getpid()}.jsonl"
    # One write per line to a file only this process appends to: a SIGKILL loses at most
    # the line being written, never garbles an earlier one.
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(line) + "\n")


def _allocator_holder(port: int) -> int | None:
    """The pid the allocator's owner record names for this port (diagnostics only)."""
    try:
        record = json.loads((lock_dir() / "ports" / f"{port}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    return pid if isinstance(pid, int) else None


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    if fixturedef.argname != "prefect_harness":
        return (yield)
    lease_after = time.time()
    try:
        handle = yield
    except BaseException as exc:
        _write("start_failed", lease_after=lease_after, failed_at=time.time(), error=repr(exc))
        raise
    if isinstance(handle, HarnessHandle):
        try:
            server_create_time: float | None = psutil.Process(handle.server_pid).create_time()
        except psutil.Error:
            server_create_time = None
        _write(
            "harness",
            lease_after=lease_after,
            ready_at=time.time(),
            port=handle.port,
            database=handle.database_location,
            directory=str(handle.directory),
            server_pid=handle.server_pid,
            server_create_time=server_create_time,
            server_forked=handle.server_forked,
            allocator_pid=_allocator_holder(handle.port),
        )
    return handle


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    # pytest calls this after the fixture's own teardown: the harness is fully gone.
    if fixturedef.argname == "prefect_harness":
        _write("released", released_by=time.time())
