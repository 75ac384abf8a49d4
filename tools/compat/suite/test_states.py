"""Final states: failures, retries, hooks and parameters."""

import pytest
from prefect import flow, task


class PaymentDeclined(Exception):
    pass


@task
def charge(amount: int) -> int:
    if amount > 100:
        raise PaymentDeclined(f"{amount} is over the limit")
    return amount


@flow
def checkout(amount: int) -> int:
    return charge(amount)


def test_failing_flow_returns_failed_state():
    state = checkout(500, return_state=True)

    assert state.is_failed()
    with pytest.raises(PaymentDeclined, match="500 is over the limit"):
        state.result()


def test_failing_flow_raises_when_called():
    with pytest.raises(PaymentDeclined):
        checkout(101)


def test_completed_state_holds_the_result():
    state = checkout(42, return_state=True)

    assert state.is_completed()
    assert state.result() == 42


def test_task_retries_until_it_succeeds():
    attempts = []

    @task(retries=3, retry_delay_seconds=0)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "done"

    @flow
    def resilient() -> str:
        return flaky()

    assert resilient() == "done"
    assert len(attempts) == 3


def test_task_fails_once_retries_are_exhausted():
    attempts = []

    @task(retries=1, retry_delay_seconds=0)
    def always_down() -> None:
        attempts.append(1)
        raise ConnectionError("still down")

    @flow
    def hopeless() -> None:
        always_down()

    state = hopeless(return_state=True)

    assert state.is_failed()
    assert len(attempts) == 2


def test_on_failure_hook_sees_the_failed_state():
    seen = []

    def alert(flow, flow_run, state):
        seen.append((flow_run.name, state.type.value))

    @flow(on_failure=[alert])
    def fragile() -> None:
        raise RuntimeError("broken")

    state = fragile(return_state=True)

    assert state.is_failed()
    assert len(seen) == 1
    assert seen[0][1] == "FAILED"


def test_parameters_are_validated_and_defaulted():
    @flow
    def invoice(customer: str, amount: int = 10) -> str:
        return f"{customer}:{amount}"

    assert invoice("acme") == "acme:10"
    assert invoice("acme", amount="25") == "acme:25"  # coerced by the flow's signature
    state = invoice("acme", amount="lots", return_state=True)
    assert state.is_failed()
