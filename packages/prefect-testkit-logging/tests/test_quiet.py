from __future__ import annotations

import logging

import pytest
from prefect import flow, get_run_logger
from prefect.logging import get_logger

from prefect_testkit_logging import capture_prefect_logs, quiet_prefect_loggers


@flow
def speaks() -> None:
    get_run_logger().info("user run log")


def levels() -> dict[str, int]:
    names = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.client")
    return {name: logging.getLogger(name).level for name in names}


@pytest.mark.usefixtures("prefect_server")
def test_quiets_prefect_internals_but_not_run_logs(caplog: pytest.LogCaptureFixture) -> None:
    before = levels()
    with quiet_prefect_loggers() as quiet, capture_prefect_logs() as capture:
        # The logger behind "Starting/Stopping temporary server on ...".
        get_logger().info("Stopping temporary server on http://example")
        get_logger("client").info("client chatter")
        get_logger("client").warning("client warning stays")
        speaks()
    assert "prefect" in quiet.changed_loggers
    messages = [record.getMessage() for record in caplog.records]
    assert "Stopping temporary server on http://example" not in messages
    assert "client chatter" not in messages
    assert "client warning stays" in messages
    assert "user run log" in messages
    capture.assert_logged("user run log", "INFO")
    assert levels() == before


def test_permanent_use_and_restore() -> None:
    before = levels()
    quiet = quiet_prefect_loggers("ERROR")
    try:
        assert not get_logger().isEnabledFor(logging.WARNING)
        assert logging.getLogger("prefect.flow_runs").isEnabledFor(logging.INFO)
        assert logging.getLogger("prefect.task_runs").isEnabledFor(logging.INFO)
    finally:
        quiet.restore()
    assert levels() == before
    quiet.restore()  # idempotent


def test_nested_quieting_restores_in_order() -> None:
    before = levels()
    with quiet_prefect_loggers():
        middle = levels()
        with quiet_prefect_loggers("CRITICAL"):
            assert logging.getLogger("prefect").level == logging.CRITICAL
        assert levels() == middle
    assert levels() == before


def test_bad_level() -> None:
    with pytest.raises(ValueError, match="not a logging level name"):
        quiet_prefect_loggers("SHOUTY")
    with pytest.raises(TypeError, match="level must be a logging level"):
        quiet_prefect_loggers(None)  # type: ignore[arg-type]
