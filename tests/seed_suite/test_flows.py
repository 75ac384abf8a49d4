"""Flow tests written the way Prefect's testing docs show them."""

import logging

import pytest
from prefect import flow, get_run_logger, task
from prefect.logging import disable_run_logger


@task
def add(x: int, y: int) -> int:
    get_run_logger().info("adding %d and %d", x, y)
    return x + y


@flow
def total(values: list[int]) -> int:
    result = 0
    for value in values:
        result = add(result, value)
    get_run_logger().info("total is %d", result)
    return result


@flow
async def async_total(values: list[int]) -> int:
    return sum(values)


def test_flow_result():
    assert total([1, 2, 3]) == 6


def test_task_body_with_fn():
    with disable_run_logger():
        assert add.fn(2, 3) == 5


def test_caplog_captures_flow_logs(caplog):
    caplog.set_level(logging.INFO)
    total([4, 5])
    assert "total is 9" in caplog.text
    assert "adding 4 and 5" in caplog.text


@pytest.mark.asyncio
async def test_async_flow():
    assert await async_total([1, 1]) == 2


@pytest.mark.parametrize("n", range(4))
def test_many_flows(n):
    assert total([n, n]) == 2 * n
