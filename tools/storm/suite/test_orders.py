"""Flows with one or two tasks, checked by their results."""

from __future__ import annotations

from prefect import flow, task


@task
def price(quantity: int, unit: int) -> int:
    return quantity * unit


@task
def discount(total: int, percent: int) -> int:
    return total - total * percent // 100


@flow
def order_total(quantity: int, unit: int, percent: int = 0) -> int:
    return discount(price(quantity, unit), percent)


@flow
def batch_total(quantities: list[int], unit: int) -> int:
    futures = price.map(quantities, unit)
    return sum(future.result() for future in futures)


def test_order_without_discount() -> None:
    assert order_total(3, 5) == 15


def test_order_with_discount() -> None:
    assert order_total(4, 25, percent=10) == 90


def test_batch_of_orders() -> None:
    assert batch_total([1, 2, 3], 10) == 60
