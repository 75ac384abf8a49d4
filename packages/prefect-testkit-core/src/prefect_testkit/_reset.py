"""Waiting for, and emptying, the database inside the running server (runs in the child)."""

from __future__ import annotations

import asyncio
import time

# Rows the server itself writes at startup, which a fresh harness has too.
KEPT_TABLES = frozenset({"block_type", "block_schema", "block_schema_reference", "configuration"})

_QUIET_TIMEOUT_SECONDS = 5.0


async def wait_for_quiet_message_bus() -> None:
    """Wait until every event published so far has been handled by the server's services.

    Task runs and events reach the database through in-memory topics; a message still
    in flight when the rows are deleted would land afterwards and leak into the next
    test. The persister flushes per message in a harness server (batch size 1), so a
    consumed message is a written one.
    """
    from prefect.server.utilities.messaging import memory

    deadline = time.monotonic() + _QUIET_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pending = any(m["published"] > m["consumed"] for m in memory.METRICS.values())
        if not pending:
            return
        await asyncio.sleep(0.005)
    # A message that failed for good never counts as consumed: proceed rather than hang.


async def empty_database() -> None:
    """Delete every row a test can create."""
    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface

    await wait_for_quiet_message_bus()
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
