"""Ordinary flow tests: a flow with a task or two, checked by its result or state."""

from __future__ import annotations

from prefect import flow, task


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def shout(text: str) -> str:
    return text.upper()


def test_double_b() -> None:
    @flow
    def f() -> int:
        return double(3)

    assert f() == 6


def test_add_b() -> None:
    @flow
    def f() -> int:
        return add(2, 3)

    assert f() == 5


def test_chain_b() -> None:
    @flow
    def f() -> int:
        return add(double(2), 1)

    assert f() == 5


def test_shout_b() -> None:
    @flow
    def f() -> str:
        return shout("hi")

    assert f() == "HI"


def test_param_b() -> None:
    @flow
    def f(n: int) -> int:
        return double(n)

    assert f(21) == 42


def test_state_b() -> None:
    @flow
    def f() -> int:
        return add(1, 1)

    assert f(return_state=True).is_completed()


def test_two_tasks_b() -> None:
    @flow
    def f() -> list[int]:
        return [double(1), double(2)]

    assert f() == [2, 4]


def test_submit_b() -> None:
    @flow
    def f() -> int:
        return double.submit(4).result()

    assert f() == 8


def test_strings_b() -> None:
    @flow
    def f() -> str:
        return shout("a") + shout("b")

    assert f() == "AB"


def test_sum_b() -> None:
    @flow
    def f() -> int:
        return add(double(1), double(2))

    assert f() == 6
