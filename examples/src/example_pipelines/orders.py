"""Process a day's orders: fetch, validate, price and summarise them."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from prefect import flow, get_run_logger, task

CATALOGUE = {"apple": 0.5, "bread": 2.25, "cheese": 4.0}

# How often the order source has failed, per day: a stand-in for a flaky upstream API.
_source_failures: Counter[str] = Counter()


@dataclass(frozen=True)
class Order:
    order_id: int
    item: str
    quantity: int


class InvalidOrderError(ValueError):
    """An order that names an unknown item or a non-positive quantity."""


@task(retries=2, retry_delay_seconds=0)
def fetch_orders(day: str, flaky_attempts: int = 0) -> list[Order]:
    """Read the day's orders; the first ``flaky_attempts`` calls fail like a flaky API."""
    if _source_failures[day] < flaky_attempts:
        _source_failures[day] += 1
        raise ConnectionError(f"order source unavailable for {day}")
    return [Order(1, "apple", 4), Order(2, "bread", 1), Order(3, "cheese", 2)]


@task
def validate(order: Order) -> Order:
    logger = get_run_logger()
    if order.item not in CATALOGUE or order.quantity <= 0:
        raise InvalidOrderError(f"order {order.order_id}: {order.quantity} x {order.item!r}")
    logger.info("order %s is valid", order.order_id)
    return order


@task
def price(order: Order) -> float:
    return round(CATALOGUE[order.item] * order.quantity, 2)


@flow
def summarise(totals: list[float]) -> dict[str, float]:
    """A subflow: the day's revenue and the largest order."""
    get_run_logger().info("summarising %d orders", len(totals))
    return {"revenue": round(sum(totals), 2), "largest": max(totals, default=0.0)}


@flow(log_prints=True)
def process_orders(day: str, flaky_attempts: int = 0) -> dict[str, float]:
    logger = get_run_logger()
    orders = fetch_orders(day, flaky_attempts)
    logger.info("fetched %d orders for %s", len(orders), day)
    valid = [validate(order) for order in orders]
    totals = [price(order) for order in valid]
    summary = summarise(totals)
    print(f"revenue for {day}: {summary['revenue']}")
    return summary


@flow
def process_bad_order() -> float:
    """Fails: the order names an item that is not in the catalogue."""
    return price(validate(Order(99, "caviar", 1)))


@task
async def fetch_stock(item: str) -> int:
    await asyncio.sleep(0.01)
    return {"apple": 120, "bread": 30, "cheese": 12}[item]


@flow
async def stock_report() -> dict[str, int]:
    """An async flow: fetch every item's stock concurrently."""
    counts = await asyncio.gather(*(fetch_stock(item) for item in CATALOGUE))
    get_run_logger().info("stock checked for %d items", len(counts))
    return dict(zip(CATALOGUE, counts, strict=True))
