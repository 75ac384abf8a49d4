"""Waiting for, and emptying, the database inside the running server (runs in the child)."""

from __future__ import annotations

import asyncio
import time

# Rows the server itself writes at startup, which a fresh harness has too.
KEPT_TABLES = frozenset({"block_type", "block_schema", "block_schema_reference", "configuration"})

# A backlog is worked off however long it takes, up to this bound: a reset that gave up
# earlier would let the rest land in the next test's database.
_QUIET_TIMEOUT_SECONDS = 60.0
# With nothing queued, counts unchanged this long mean the rest went to the dead letters.
_SETTLED_SECONDS = 1.0
_DEADLOCK_RETRIES = 5


def _message_bus_state() -> tuple[bool, int, object]:
    """(anything unconsumed, messages still queued, a snapshot of the counters)."""
    from prefect.server.utilities.messaging import memory

    metrics = memory.METRICS
    unconsumed = any(m["published"] > m["consumed"] for m in metrics.values())
    queued = sum(
        subscription._queue.qsize() + subscription._retry.qsize()
        for topic in memory.Topic._topics.values()
        for subscription in topic._subscriptions
    )
    return unconsumed, queued, sorted((name, dict(m)) for name, m in metrics.items())


async def wait_for_quiet_message_bus() -> None:
    """Wait until every event published so far has been handled by the server's services.

    Task runs and events reach the database through in-memory topics; a message still
    in flight when the rows are deleted would land afterwards and leak into the next
    test. The persister flushes per message in a harness server (batch size 1), so a
    consumed message is a written one. A message that failed for good is never counted
    as consumed: once nothing is queued and the counters have settled, that is the reason.
    """
    deadline = time.monotonic() + _QUIET_TIMEOUT_SECONDS
    settled: tuple[object, float] | None = None
    while time.monotonic() < deadline:
        unconsumed, queued, snapshot = _message_bus_state()
        if not unconsumed:
            return
        now = time.monotonic()
        if queued or settled is None or settled[0] != snapshot:
            settled = (snapshot, now)
        elif now - settled[1] >= _SETTLED_SECONDS:
            return
        await asyncio.sleep(0.005)


async def empty_database() -> None:
    """Delete every row a test can create."""
    from sqlalchemy.exc import DBAPIError

    await wait_for_quiet_message_bus()
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            await _delete_rows()
            return
        except DBAPIError as exc:
            # TRUNCATE locks table after table; a server service writing meanwhile can
            # deadlock with it, and PostgreSQL then aborts one of the two: try again.
            if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == _DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))


async def _delete_rows() -> None:
    import sqlalchemy as sa

    from prefect_testkit._prefect import provide_database_interface

    db = provide_database_interface()
    tables = [t for t in db.Base.metadata.sorted_tables if t.name not in KEPT_TABLES]
    async with db.session_context(begin_transaction=True) as session:
        if session.bind.dialect.name == "postgresql":
            # TRUNCATE is PostgreSQL's fast way to empty a table (DELETE takes seconds
            # row by row with foreign-key checks), but each costs new files: only the
            # tables that hold rows. CASCADE reaches tables that migrations made and the
            # ORM does not map; no kept table references the emptied ones.
            probe = " UNION ALL ".join(
                f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in tables
            )
            filled = (await session.execute(sa.text(probe))).scalars().all()
            if filled:
                names = ", ".join(f'"{name}"' for name in filled)
                await session.execute(sa.text(f"TRUNCATE {names} CASCADE"))
        else:
            for table in reversed(tables):
                await session.execute(table.delete())
