"""drain_workers: what a run logged just before returning is in the API once it returns."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_testkit_logging import drain_workers

pytestmark = pytest.mark.usefixtures("prefect_server")


@flow
def last_words(text: str) -> None:
    get_run_logger().critical(text)  # still queued in the log worker when the flow returns


def run_logging(text: str) -> UUID:
    state = last_words(text, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def stored_messages(flow_run_id: UUID) -> list[str]:
    """What the API has for the run, read without draining anything first."""
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))

    async def read() -> list[str]:  # the sync client reads logs only since Prefect 3.1
        async with get_client() as client:
            return [log.message for log in await client.read_logs(log_filter=log_filter)]

    return run_coro_as_sync(read())  # type: ignore[return-value]


def test_from_sync_code() -> None:
    run = run_logging("sync drain")
    drain_workers(30)
    assert "sync drain" in stored_messages(run)


def test_logs_only() -> None:
    run = run_logging("logs only")
    drain_workers(30, events=False)
    assert "logs only" in stored_messages(run)


@pytest.mark.asyncio
async def test_inside_a_running_loop_which_it_leaves_alone() -> None:
    loop = asyncio.get_running_loop()
    run = await asyncio.to_thread(run_logging, "drained inside a loop")
    drain_workers(30)  # a sync helper called from an async test
    assert asyncio.get_running_loop() is loop
    assert "drained inside a loop" in await asyncio.to_thread(stored_messages, run)


def test_no_timeout_waits_as_long_as_it_takes() -> None:
    run = run_logging("unbounded")
    drain_workers()
    assert "unbounded" in stored_messages(run)
