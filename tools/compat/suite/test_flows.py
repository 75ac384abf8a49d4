"""Flows and tasks: results, futures, mapping, async, subflows and task bodies."""

import asyncio

import pytest
from prefect import flow, get_run_logger, task, unmapped
from prefect.logging import disable_run_logger


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def double(x: int) -> int:
    get_run_logger().info("doubling %d", x)
    return 2 * x


@task
async def slow_square(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * x


@flow
def pipeline(values: list[int]) -> int:
    total = 0
    for value in values:
        total = add(total, double(value))
    return total


def test_sync_flow_returns_its_result():
    assert pipeline([1, 2, 3]) == 12


def test_submitted_tasks_run_concurrently_and_resolve():
    @flow
    def fan_out() -> list[int]:
        futures = [double.submit(n) for n in range(4)]
        return [future.result() for future in futures]

    assert fan_out() == [0, 2, 4, 6]


def test_submitted_future_passes_into_another_task():
    @flow
    def chained() -> int:
        first = double.submit(5)
        return add.submit(first, 1).result()

    assert chained() == 11


def test_task_map_with_unmapped_argument():
    @flow
    def mapped() -> list[int]:
        return add.map([1, 2, 3], unmapped(10)).result()

    assert mapped() == [11, 12, 13]


def test_async_flow_with_gathered_tasks():
    @flow
    async def squares(n: int) -> list[int]:
        return list(await asyncio.gather(*(slow_square(i) for i in range(n))))

    assert asyncio.run(squares(4)) == [0, 1, 4, 9]


@pytest.mark.asyncio
async def test_async_flow_awaited_in_async_test():
    @flow
    async def async_pipeline(x: int) -> int:
        squared = await slow_square(x)
        return squared + 1

    assert await async_pipeline(3) == 10


def test_subflow_result_feeds_parent():
    @flow
    def child(x: int) -> int:
        return double(x)

    @flow
    def parent() -> int:
        return child(2) + child(3)

    assert parent() == 10


def test_task_body_called_with_fn():
    assert add.fn(2, 3) == 5
    with disable_run_logger():
        assert double.fn(4) == 8
