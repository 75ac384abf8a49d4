from __future__ import annotations

import logging
import uuid

import pytest
from example_pipelines.orders import (
    InvalidOrderError,
    Order,
    process_bad_order,
    process_orders,
    stock_report,
    validate,
)
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.logging import disable_run_logger


def test_process_orders_summarises_the_day() -> None:
    assert process_orders("2026-11-01") == {"revenue": 12.25, "largest": 8.0}


def test_flaky_source_is_retried_and_recorded_by_the_api() -> None:
    state = process_orders(f"flaky-{uuid.uuid4()}", flaky_attempts=2, return_state=True)
    assert state.is_completed()

    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    fetches = [run for run in task_runs if run.task_key.endswith("fetch_orders")]
    assert [run.run_count for run in fetches] == [3]


def test_a_bad_order_fails_the_flow() -> None:
    with pytest.raises(InvalidOrderError, match="caviar"):
        process_bad_order()
    assert process_bad_order(return_state=True).is_failed()


def test_task_body_with_fn_and_disabled_run_logger() -> None:
    with disable_run_logger():
        assert validate.fn(Order(7, "bread", 2)) == Order(7, "bread", 2)


def test_caplog_captures_flow_and_task_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    process_orders("2026-11-02")
    assert "fetched 3 orders for 2026-11-02" in caplog.text
    assert "order 3 is valid" in caplog.text
    assert "revenue for 2026-11-02: 12.25" in caplog.text


async def test_async_flow_with_pytest_asyncio() -> None:
    assert await stock_report() == {"apple": 120, "bread": 30, "cheese": 12}
