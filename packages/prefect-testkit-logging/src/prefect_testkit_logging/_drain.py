"""Flushing Prefect's background workers, which send run logs and events to the API in batches.

Used by this package's readers of stored logs and by the harness before it stops a
server: one way to drain, from sync code and from inside a running event loop alike.
"""

from __future__ import annotations

import inspect
import time


def drain_workers(timeout: float | None = None, *, events: bool = True) -> None:
    """Send what Prefect's log worker (and event worker) still holds, and stop them.

    A line logged or an event emitted just before this call is in the API once it
    returns, unless `timeout` (seconds for all workers together; None: as long as they
    take) ran out first. With ``events=False`` only the log worker is drained.

    Stopped workers matter as much as flushed ones: the event worker is one per process
    and keeps the API URL it started with, so one left running after its server is gone
    would send the next server's events there. Prefect starts them again when needed.

    Blocks the caller. Safe inside a running event loop (a sync helper called from an
    async test): the drain runs on Prefect's own loop thread, never on the caller's loop.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    from prefect_testkit_logging._prefect import drain_all

    services = (APILogWorker, EventsWorker) if events else (APILogWorker,)
    deadline = None if timeout is None else time.monotonic() + timeout

    async def drain() -> None:
        for service in services:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # A coroutine here, where a loop runs; concurrent futures' wait elsewhere.
            drained = drain_all(service, left)
            if inspect.isawaitable(drained):
                await drained

    run_coro_as_sync(drain())
