"""Ordinary flow tests: a flow with a task or two, checked by its result or state.

Ten tests, each run twice (``copy``), make the twenty-test suite of the benchmark.
"""

from __future__ import annotations

import pytest
from prefect import flow, task

# Each test runs twice: ten kinds of test, twenty tests.
pytestmark = pytest.mark.parametrize("copy", ["a", "b"])


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def shout(text: str) -> str:
    return text.upper()


def test_double(copy: str) -> None:
    @flow
    def f() -> int:
        return double(3)

    assert f() == 6


def test_add(copy: str) -> None:
    @flow
    def f() -> int:
        return add(2, 3)

    assert f() == 5


def test_chain(copy: str) -> None:
    @flow
    def f() -> int:
        return add(double(2), 1)

    assert f() == 5


def test_shout(copy: str) -> None:
    @flow
    def f() -> str:
        return shout("hi")

    assert f() == "HI"


def test_param(copy: str) -> None:
    @flow
    def f(n: int) -> int:
        return double(n)

    assert f(21) == 42


def test_state(copy: str) -> None:
    @flow
    def f() -> int:
        return add(1, 1)

    assert f(return_state=True).is_completed()


def test_two_tasks(copy: str) -> None:
    @flow
    def f() -> list[int]:
        return [double(1), double(2)]

    assert f() == [2, 4]


def test_submit(copy: str) -> None:
    @flow
    def f() -> int:
        return double.submit(4).result()

    assert f() == 8


def test_strings(copy: str) -> None:
    @flow
    def f() -> str:
        return shout("a") + shout("b")

    assert f() == "AB"


def test_sum(copy: str) -> None:
    @flow
    def f() -> int:
        return add(double(1), double(2))

    assert f() == 6
