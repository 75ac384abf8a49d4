from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import LogSort
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_testkit_logging._drain import drain_workers
from prefect_testkit_logging._util import coerce_uuid

if TYPE_CHECKING:
    from prefect.client.schemas.objects import Log

#: The server refuses a larger ``limit`` (PREFECT_SERVER_API_DEFAULT_LIMIT defaults to 200).
PAGE_SIZE = 200


@dataclass(frozen=True)
class StoredLog:
    """A log line as the Prefect API stored it."""

    timestamp: datetime
    level: int
    message: str
    logger_name: str
    flow_run_id: UUID | None
    task_run_id: UUID | None

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


def _to_stored(log: Log) -> StoredLog:
    return StoredLog(
        timestamp=log.timestamp,
        level=log.level,
        message=log.message,
        logger_name=log.name,
        flow_run_id=log.flow_run_id,
        task_run_id=log.task_run_id,
    )


def _check_args(flow_run_id: object, include_task_runs: object, drain_timeout: object) -> LogFilter:
    run = coerce_uuid(flow_run_id, argument="flow_run_id")
    if not isinstance(include_task_runs, bool):
        raise TypeError(
            f"include_task_runs must be a bool, got {type(include_task_runs).__name__}: "
            f"{include_task_runs!r}"
        )
    if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, (int, float)):
        raise TypeError(
            f"drain_timeout must be a number of seconds, got {type(drain_timeout).__name__}: "
            f"{drain_timeout!r}"
        )
    return LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run]))


def _finish(pages: Sequence[Log], include_task_runs: bool) -> list[StoredLog]:
    logs = [log for log in pages if include_task_runs or log.task_run_id is None]
    # sorted() is stable, so lines with equal timestamps keep the order the server gave.
    return sorted((_to_stored(log) for log in logs), key=lambda log: log.timestamp)


def read_run_logs(
    flow_run_id: UUID | str,
    *,
    include_task_runs: bool = True,
    drain_timeout: float = 10.0,
) -> list[StoredLog]:
    """Return the logs the API stored for one flow run, oldest first.

    First drains Prefect's ``APILogWorker`` (waiting up to ``drain_timeout`` seconds), which
    sends logs in batches in the background, so lines logged just before the run finished
    are included. Reads every page. With ``include_task_runs=False`` only the flow run's
    own lines are returned. Logs of subflows belong to the subflow's own run id.
    """
    # Through the async client on Prefect's own loop: the sync client reads logs only
    # since Prefect 3.1, and one implementation serves both entry points.
    coro = aread_run_logs(
        flow_run_id, include_task_runs=include_task_runs, drain_timeout=drain_timeout
    )
    return run_coro_as_sync(coro)


async def aread_run_logs(
    flow_run_id: UUID | str,
    *,
    include_task_runs: bool = True,
    drain_timeout: float = 10.0,
) -> list[StoredLog]:
    """Async twin of :func:`read_run_logs`."""
    log_filter = _check_args(flow_run_id, include_task_runs, drain_timeout)
    # In a worker thread: the drain blocks, and this loop must keep serving its tasks.
    await asyncio.to_thread(drain_workers, drain_timeout, events=False)
    collected: list[Log] = []
    async with get_client() as client:
        while True:
            page = await client.read_logs(
                log_filter=log_filter,
                limit=PAGE_SIZE,
                offset=len(collected),
                sort=LogSort.TIMESTAMP_ASC,
            )
            collected.extend(page)
            if len(page) < PAGE_SIZE:
                break
    return _finish(collected, include_task_runs)
