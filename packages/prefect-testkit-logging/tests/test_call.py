from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from prefect import flow, get_run_logger, task
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging import disable_run_logger
from prefect.tasks import Task

from prefect_testkit_logging import call_fn, missing_context_hint


def run_loggers_disabled() -> bool:
    """Whether get_run_logger() outside a run is silent, as this Prefect release decides it."""
    try:
        get_run_logger()
    except MissingContextError:
        return False
    return True


@task
def add(x: int, y: int = 1) -> int:
    get_run_logger().info("adding %s and %s", x, y)
    return x + y


@task
async def add_later(x: int, y: int) -> int:
    # The logger must still be disabled after the coroutine has been suspended and resumed.
    await asyncio.sleep(0)
    get_run_logger().info("adding later")
    assert run_loggers_disabled()
    return x + y


@flow
def greet(name: str) -> str:
    get_run_logger().info("greeting %s", name)
    return f"hello {name}"


@task
def count_up(n: int) -> Iterator[int]:
    for i in range(n):
        get_run_logger().info("yielding %s", i)
        yield i


@task
async def count_up_async(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        get_run_logger().info("yielding %s", i)
        yield i


class Calculator:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    @task
    def shift(self, x: int) -> int:
        get_run_logger().info("shifting")
        return x + self.offset

    @flow
    def shift_flow(self, x: int) -> int:
        get_run_logger().info("shifting in a flow")
        return x + self.offset


def test_sync_task_body_runs_with_run_logger_disabled() -> None:
    assert call_fn(add, 2, y=3) == 5
    assert not run_loggers_disabled()


def test_flow_body_that_uses_get_run_logger() -> None:
    assert call_fn(greet, "world") == "hello world"


def test_calling_the_body_directly_fails_and_the_hint_names_the_fix() -> None:
    with pytest.raises(MissingContextError) as excinfo:
        add.fn(1)
    hint = missing_context_hint(excinfo.value)
    assert hint is not None
    assert "call_fn(" in hint
    assert "disable_run_logger()" in hint
    assert "prefect_logs" in hint


def call_greet_body_and_wrap_the_error() -> None:
    try:
        greet.fn("x")
    except MissingContextError as exc:
        raise RuntimeError("wrapped") from exc


def test_hint_follows_the_exception_chain_and_ignores_other_errors() -> None:
    with pytest.raises(RuntimeError) as excinfo:
        call_greet_body_and_wrap_the_error()
    assert missing_context_hint(excinfo.value) is not None
    assert missing_context_hint(ValueError("no")) is None
    # Other missing contexts are not fixed by silencing the run logger.
    with pytest.raises(MissingContextError) as other:
        get_run_context()
    assert missing_context_hint(other.value) is None
    assert missing_context_hint(MissingContextError("some other context is missing")) is None


@pytest.mark.asyncio
async def test_async_task_returns_an_awaitable_that_keeps_the_logger_disabled() -> None:
    pending = call_fn(add_later, 2, 3)
    assert asyncio.iscoroutine(pending)
    assert not run_loggers_disabled()
    assert await pending == 5
    assert not run_loggers_disabled()


@pytest.mark.asyncio
async def test_interleaved_async_calls_leave_the_loggers_enabled() -> None:
    # With nested save/restore blocks this ordering would leave the loggers disabled.
    results = await asyncio.gather(*(call_fn(add_later, i, i) for i in range(5)))
    assert results == [0, 2, 4, 6, 8]
    assert not run_loggers_disabled()


def test_call_fn_inside_disable_run_logger_keeps_it_disabled_afterwards() -> None:
    with disable_run_logger():
        assert call_fn(add, 1) == 2
        assert run_loggers_disabled()
    assert not run_loggers_disabled()


def test_bound_method_task_gets_its_instance() -> None:
    calculator = Calculator(offset=10)
    assert call_fn(calculator.shift, 5) == 15
    assert call_fn(Calculator(offset=1).shift, 5) == 6


def test_bound_method_flow() -> None:
    assert call_fn(Calculator(offset=3).shift_flow, 1) == 4


@pytest.mark.skipif(
    not hasattr(Task, "isclassmethod"), reason="@task over @classmethod arrived in Prefect 3.2"
)
def test_classmethod_task() -> None:
    class Described:
        @task
        @classmethod
        def describe(cls, suffix: str) -> str:
            get_run_logger().info("describing")
            return cls.__name__ + suffix

    assert call_fn(Described.describe, "!") == "Described!"


def test_generator_task_is_driven_with_the_logger_disabled() -> None:
    gen = call_fn(count_up, 3)
    assert not run_loggers_disabled()
    assert list(gen) == [0, 1, 2]
    assert not run_loggers_disabled()


@pytest.mark.asyncio
async def test_async_generator_task_is_driven_with_the_logger_disabled() -> None:
    items = [item async for item in call_fn(count_up_async, 3)]
    assert items == [0, 1, 2]
    assert not run_loggers_disabled()


def test_errors_from_the_body_propagate_and_restore_the_logger() -> None:
    with pytest.raises(TypeError):
        call_fn(add, "a", 1)  # type: ignore[call-overload]
    assert not run_loggers_disabled()


def plain(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (plain, r"got builtins\.function.*call it directly"),
        (42, r"got builtins\.int: 42"),
        (None, r"got builtins\.NoneType"),
        (add.fn, r"got builtins\.function"),
    ],
)
def test_non_task_or_flow_is_a_clear_type_error(obj: object, expected: str) -> None:
    with pytest.raises(TypeError, match=r"expects a Prefect task or flow") as excinfo:
        call_fn(obj, 1)  # type: ignore[call-overload]
    excinfo.match(expected)
