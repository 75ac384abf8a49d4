"""The example project's tests: plain Prefect testing, plus what the toolkit adds.

No conftest: `prefect_harness_autouse = true` in pyproject.toml gives every test the
session harness of pytest-prefect-testkit (one per xdist worker).
"""

from __future__ import annotations

import logging
import uuid

import pytest
from example_pipelines.orders import (
    InvalidOrderError,
    Order,
    fetch_stock,
    process_bad_order,
    process_orders,
    stock_report,
    validate,
)
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.logging import disable_run_logger

from prefect_testkit import HarnessHandle
from prefect_testkit_logging import (
    PrefectLogCapture,
    call_fn,
    quiet_prefect_loggers,
    read_run_logs,
)


def test_process_orders_summarises_the_day() -> None:
    assert process_orders("2026-11-01") == {"revenue": 12.25, "largest": 8.0}


def test_flaky_source_is_retried_and_recorded_by_the_api(
    prefect_harness: HarnessHandle, sync_prefect_client: SyncPrefectClient
) -> None:
    state = process_orders(f"flaky-{uuid.uuid4()}", flaky_attempts=2, return_state=True)
    assert state.is_completed()

    prefect_harness.flush()  # task runs are recorded from events, asynchronously
    task_runs = sync_prefect_client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    )
    fetches = [run for run in task_runs if run.name.startswith("fetch_orders")]
    assert [run.run_count for run in fetches] == [3]


def test_a_bad_order_fails_the_flow() -> None:
    with pytest.raises(InvalidOrderError, match="caviar"):
        process_bad_order()
    assert process_bad_order(return_state=True).is_failed()


def test_task_body_with_fn_and_disabled_run_logger() -> None:
    # Prefect's documented way...
    with disable_run_logger():
        assert validate.fn(Order(7, "bread", 2)) == Order(7, "bread", 2)
    # ...and the toolkit's: one call, for sync and async bodies alike.
    assert call_fn(validate, Order(8, "apple", 1)) == Order(8, "apple", 1)


async def test_an_async_task_body_with_call_fn() -> None:
    assert await call_fn(fetch_stock, "cheese") == 12


def test_caplog_captures_flow_and_task_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    process_orders("2026-11-02")
    assert "fetched 3 orders for 2026-11-02" in caplog.text
    assert "order 3 is valid" in caplog.text
    assert "revenue for 2026-11-02: 12.25" in caplog.text


def test_prefect_logs_sees_every_run_and_the_server_stored_them(
    prefect_logs: PrefectLogCapture,
) -> None:
    with quiet_prefect_loggers():  # Prefect's own chatter off, run logs kept
        state = process_orders("2026-11-03", return_state=True)
    prefect_logs.assert_logged("summarising 3 orders", level="INFO")  # the subflow's
    flow_run_id = state.state_details.flow_run_id
    assert prefect_logs.records_for(flow_run_id)

    stored = [log.message for log in read_run_logs(flow_run_id)]
    assert "fetched 3 orders for 2026-11-03" in stored
    assert "order 1 is valid" in stored  # a task's line, stored under its flow run


@pytest.mark.prefect_isolated
def test_an_isolated_test_starts_from_an_empty_database(
    sync_prefect_client: SyncPrefectClient,
) -> None:
    assert sync_prefect_client.read_flow_runs() == []
    process_orders("2026-11-04")
    assert len(sync_prefect_client.read_flow_runs()) == 2  # the flow and its subflow


async def test_async_flow_with_pytest_asyncio() -> None:
    assert await stock_report() == {"apple": 120, "bread": 30, "cheese": 12}
