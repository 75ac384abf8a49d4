"""``python -m prefect_testkit._postgres.migrate``: migrate the configured database to head.

A child of the harness, so that Prefect's server modules are never imported into the
test process just to build a template.
"""

from __future__ import annotations

import asyncio


async def _migrate() -> None:
    from prefect_testkit._prefect import provide_database_interface

    db = provide_database_interface()
    await db.create_db()
    await (await db.engine()).dispose()


if __name__ == "__main__":
    asyncio.run(_migrate())
