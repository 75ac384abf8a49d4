from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import pytest
from prefect import flow, get_run_logger, task
from prefect.logging import disable_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from prefect_testkit_logging import (
    PrefectLogCapture,
    call_fn,
    caplog_bridge,
    capture_prefect_logs,
    propagate_run_logs_to,
)

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")

pytestmark = pytest.mark.usefixtures("prefect_server")


@task
def sync_step(x: int) -> int:
    get_run_logger().info("sync step %s", x)
    return x


@task
async def async_step(x: int) -> int:
    await asyncio.sleep(0)
    get_run_logger().info("async step %s", x)
    return x


@task
def threaded_step(x: int) -> str:
    get_run_logger().info("threaded step %s", x)
    return threading.current_thread().name


@flow
def child() -> None:
    get_run_logger().warning("child flow says hi")


# Prefect infers ThreadPoolTaskRunner[Never] here and types .submit() of an async task as
# yielding the coroutine; both are typing artefacts of Prefect's, not of this test.
@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]
def parent() -> str:
    get_run_logger().info("parent start")
    # A sync flow runs an async task through its task runner, on the runner's event loop.
    async_step.submit(1).result()  # type: ignore[unused-coroutine]
    sync_step(2)
    thread_name = threaded_step.submit(3).result()
    child()
    get_run_logger().info("parent end")
    return thread_name


@flow
def tiny(word: str) -> None:
    get_run_logger().debug("debug %s", word)
    get_run_logger().info("tiny %s", word)


class Collect(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def only(records: list[str], text: str) -> str:
    matching = [record for record in records if text in record]
    assert len(matching) == 1, records
    return matching[0]


@contextmanager
def propagation_off() -> Iterator[None]:
    """What a user logging config with ``propagate: false`` does to the run loggers.

    Used inside test bodies on purpose: recent pytest versions attach caplog's handler to
    loggers that are non-propagating when a test phase starts, so only a change made after
    that (as a logging config applied mid-test does) shows the gap the bridge closes.
    """
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.propagate = propagate


def handler_state() -> list[tuple[str, list[logging.Handler], int, type[logging.Logger]]]:
    return [
        (name, list(logger.handlers), logger.level, type(logger))
        for name in RUN_LOGGERS
        for logger in [logging.getLogger(name)]
    ]


def check_parent_run(capture: PrefectLogCapture, thread_name: str) -> None:
    parent_start = capture.assert_logged("parent start", level="INFO")
    parent_id = parent_start.flow_run_id
    assert parent_id is not None
    child_line = capture.assert_logged("child flow says hi", level=logging.WARNING)
    child_id = child_line.flow_run_id
    assert child_id is not None
    assert child_id != parent_id

    parent_messages = [record.message for record in capture.records_for(parent_id)]
    for text in ("parent start", "async step 1", "sync step 2", "threaded step 3", "parent end"):
        only(parent_messages, text)
    assert "child flow says hi" not in parent_messages
    assert [record.message for record in capture.records_for(str(child_id))][-2:] == [
        "child flow says hi",
        "Finished in state Completed()",
    ]

    threaded = capture.assert_logged("threaded step 3", flow_run_id=parent_id)
    assert threaded.thread_name == thread_name != threading.current_thread().name
    assert threaded.logger_name == "prefect.task_runs"
    assert threaded.task_run_id is not None
    async_line = capture.assert_logged("async step 1")
    assert async_line.task_run_id is not None
    assert async_line.task_run_id != threaded.task_run_id
    assert parent_start.task_run_id is None
    assert parent_start.logger_name == "prefect.flow_runs"
    assert capture.messages("WARNING") == ["child flow says hi"]
    assert capture.messages(None) == [record.message for record in capture.records]
    assert not capture.run_logger_disabled_during_capture


def test_captures_flow_tasks_subflow_thread_pool_and_async_task() -> None:
    before = handler_state()
    with capture_prefect_logs() as capture:
        thread_name = parent()
    check_parent_run(capture, thread_name)
    assert handler_state() == before


def test_capture_and_caplog_bridge_work_without_propagation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with propagation_off(), capture_prefect_logs() as capture, caplog_bridge():
        thread_name = parent()
    check_parent_run(capture, thread_name)
    # caplog got every record the capture got, each exactly once.
    run_records = [record for record in caplog.records if record.name in RUN_LOGGERS]
    assert [record.getMessage() for record in run_records] == capture.messages()


def test_without_a_bridge_a_root_handler_misses_run_logs_when_propagation_is_off() -> None:
    # A plain root handler, not caplog: pytest-prefect-testkit bridges caplog for every test.
    root_handler = Collect()
    logging.getLogger().addHandler(root_handler)
    try:
        with propagation_off():
            tiny("unseen")
        with propagation_off(), propagate_run_logs_to(lambda: logging.getLogger().handlers):
            tiny("seen")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert "tiny unseen" not in root_handler.messages
    assert root_handler.messages.count("tiny seen") == 1


def test_overlapping_bridges_deliver_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog_bridge(), propagation_off(), caplog_bridge(), propagate_run_logs_to(caplog.handler):
        tiny("overlap")
    assert [r.getMessage() for r in caplog.records].count("tiny overlap") == 1


def test_bridge_does_not_duplicate_when_propagation_already_reaches_caplog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog_bridge():
        tiny("once")
    assert [r.getMessage() for r in caplog.records].count("tiny once") == 1


@pytest.fixture
def bridged() -> Iterator[None]:
    # Entered during the setup phase; the records arrive during the call phase, when pytest
    # has put different handlers on the root logger.
    with caplog_bridge():
        yield


@pytest.mark.usefixtures("bridged")
def test_bridge_entered_in_a_fixture_feeds_caplog_during_the_test(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with propagation_off():
        tiny("from fixture")
    assert [r.getMessage() for r in caplog.get_records("call")].count("tiny from fixture") == 1


def test_propagate_run_logs_to_a_handler_and_a_handler_source() -> None:
    everything, warnings_only, from_source = Collect(), Collect(logging.WARNING), Collect()
    root = logging.getLogger()
    root.addHandler(from_source)
    try:
        with propagate_run_logs_to(everything, warnings_only, lambda: [from_source, everything]):
            tiny("direct")
            with propagation_off():
                tiny("bridged")
    finally:
        root.removeHandler(from_source)
    # Not on any logger: forwarded whatever the propagation.
    assert everything.messages.count("tiny direct") == 1
    assert everything.messages.count("tiny bridged") == 1
    # On the root logger: reached by propagation first, by the bridge once propagation stops.
    assert from_source.messages.count("tiny direct") == 1
    assert from_source.messages.count("tiny bridged") == 1
    assert warnings_only.messages == []
    assert all(
        not isinstance(h, type(everything)) for h in logging.getLogger(RUN_LOGGERS[0]).handlers
    )


def test_nested_captures_and_level_option() -> None:
    with capture_prefect_logs() as outer:
        with capture_prefect_logs(level="DEBUG") as inner:
            tiny("nested")
        tiny("outer only")
    assert "debug nested" in inner.messages("DEBUG")
    inner.assert_logged("tiny nested", "INFO")
    inner.assert_not_logged("outer only")
    # The level option applied to both captures while it was in force, then was undone.
    assert "debug nested" in outer.messages("DEBUG")
    assert "debug outer only" not in outer.messages()
    outer.assert_logged("tiny outer only")
    assert logging.getLogger("prefect.flow_runs").level == logging.NOTSET


def test_disabled_run_logger_is_reported_clearly() -> None:
    with capture_prefect_logs() as capture:
        assert call_fn(sync_step, 7) == 7
        tiny("real run")
    assert capture.run_logger_disabled_during_capture
    capture.assert_logged("tiny real run", "INFO")
    with pytest.raises(AssertionError) as excinfo:
        capture.assert_logged("sync step 7")
    message = str(excinfo.value)
    assert "Expected a Prefect run log containing 'sync step 7'" in message
    assert "tiny real run" in message  # lists what was captured
    assert "the Prefect run logger was disabled during this capture" in message
    assert "disabled" in capture.text().splitlines()[-1]
    # The watch is gone again and the loggers are usable.
    assert type(logging.getLogger("prefect.flow_runs")) is logging.Logger
    assert not logging.getLogger("prefect.flow_runs").disabled


def _prefect_disables_the_run_loggers() -> bool:
    with disable_run_logger():
        return logging.getLogger(RUN_LOGGERS[0]).disabled


# Prefect 3.0-3.1's disable_run_logger() switches `prefect.flow_run`/`prefect.task_run`,
# which no run record passes through: records keep flowing, so there is nothing to notice.
silences_run_logs = pytest.mark.skipif(
    not _prefect_disables_the_run_loggers(),
    reason="this Prefect's disable_run_logger() does not silence run logs (3.0-3.1)",
)


@silences_run_logs
def test_prefects_own_disable_run_logger_is_noticed_too() -> None:
    with capture_prefect_logs() as capture:
        disabled_at_start = capture.run_logger_disabled_during_capture
        with disable_run_logger():
            pass
    assert not disabled_at_start
    assert capture.run_logger_disabled_during_capture
    with pytest.raises(AssertionError, match="No run log records were captured") as excinfo:
        capture.assert_logged("anything", level="INFO")
    assert "disabled during this capture" in str(excinfo.value)


@silences_run_logs
def test_disabled_before_the_capture_started_counts() -> None:
    with disable_run_logger(), capture_prefect_logs() as capture:
        pass
    assert capture.run_logger_disabled_during_capture


def test_clean_capture_failure_says_nothing_about_disabling() -> None:
    with capture_prefect_logs() as capture:
        tiny("clean")
    with pytest.raises(AssertionError) as excinfo:
        capture.assert_logged("tiny clean", level="ERROR")
    assert "at level ERROR" in str(excinfo.value)
    assert "INFO     prefect.flow_runs" in str(excinfo.value)
    assert "disabled" not in str(excinfo.value)
    with pytest.raises(AssertionError, match="Did not expect"):
        capture.assert_not_logged("tiny clean")


def test_bad_arguments_are_clear_errors() -> None:
    with capture_prefect_logs() as capture:
        pass
    with pytest.raises(TypeError, match="flow_run_id must be a UUID or a UUID string, got int"):
        capture.records_for(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid UUID"):
        capture.records_for("nope")
    assert capture.records_for(UUID(int=0)) == []
    with pytest.raises(ValueError, match="not a logging level name"):
        capture.messages(level="LOUD")
    with pytest.raises(TypeError, match="level must be a logging level"):
        capture.messages(level=True)
    with pytest.raises(TypeError, match="text must be a str"):
        capture.assert_logged(42)  # type: ignore[arg-type]
    with (
        pytest.raises(TypeError, match="level must be a logging level"),
        capture_prefect_logs(level=1.5),  # type: ignore[arg-type]
    ):
        pass
    with (
        pytest.raises(TypeError, match=r"takes logging\.Handler instances"),
        propagate_run_logs_to("caplog"),  # type: ignore[arg-type]
    ):
        pass
