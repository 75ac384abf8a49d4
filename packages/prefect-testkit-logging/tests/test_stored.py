from __future__ import annotations

import logging
from uuid import UUID, uuid4

import pytest
from prefect import flow, get_run_logger, task
from prefect.states import Completed

from prefect_testkit_logging import StoredLog, aread_run_logs, read_run_logs

pytestmark = pytest.mark.usefixtures("prefect_server")

# More than one page of the API's 200-per-request limit.
MANY = 230


@task
def note(x: int) -> int:
    get_run_logger().warning("task saw %s", x)
    return x


@flow
def chatty() -> str:
    logger = get_run_logger()
    for i in range(MANY):
        logger.info("line %03d", i)
    logger.debug("debug is below the default level and is not sent")
    note(7)
    logger.error("something went wrong")
    # Written just before returning: still in the API log worker's queue when the flow
    # returns, so only draining it makes this line show up.
    logger.critical("last line before return")
    return "done"


@pytest.fixture(scope="module")
def chatty_run(prefect_server: None) -> UUID:
    state = chatty(return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def user_lines(logs: list[StoredLog]) -> list[tuple[str, str]]:
    engine = ("Beginning flow run", "Finished in state")
    return [(log.level_name, log.message) for log in logs if not log.message.startswith(engine)]


EXPECTED_FLOW_LINES = [
    *[("INFO", f"line {i:03d}") for i in range(MANY)],
    ("ERROR", "something went wrong"),
    ("CRITICAL", "last line before return"),
]


def test_reads_exactly_the_lines_the_run_wrote_including_the_last_one(chatty_run: UUID) -> None:
    logs = read_run_logs(chatty_run)
    assert user_lines(logs) == [
        *EXPECTED_FLOW_LINES[:MANY],
        ("WARNING", "task saw 7"),
        *EXPECTED_FLOW_LINES[MANY:],
    ]
    # The engine's own lines frame the run (3.0's engine writes no "Beginning" line); the
    # user's last line is right before the end.
    beginning = [log for log in logs if log.message.startswith("Beginning flow run")]
    assert beginning in ([], [logs[0]])
    assert [log.message for log in logs[-2:]] == [
        "last line before return",
        "Finished in state Completed()",
    ]
    assert len(logs) > 200
    assert [log.timestamp for log in logs] == sorted(log.timestamp for log in logs)
    assert {log.flow_run_id for log in logs} == {chatty_run}
    task_lines = [log for log in logs if log.task_run_id is not None]
    assert [log.message for log in task_lines] == ["task saw 7", "Finished in state Completed()"]
    assert all(log.logger_name == "prefect.task_runs" for log in task_lines)
    assert logs[-1].level == logging.INFO


def test_without_task_runs_and_with_a_string_id(chatty_run: UUID) -> None:
    logs = read_run_logs(str(chatty_run), include_task_runs=False)
    assert user_lines(logs) == EXPECTED_FLOW_LINES
    assert all(log.task_run_id is None for log in logs)


@pytest.mark.asyncio
async def test_async_twin_returns_the_same(chatty_run: UUID) -> None:
    assert await aread_run_logs(chatty_run) == read_run_logs(chatty_run)
    # The sync reader also works inside a running event loop.
    assert user_lines(read_run_logs(chatty_run, include_task_runs=False)) == EXPECTED_FLOW_LINES


def test_unknown_run_has_no_logs() -> None:
    assert read_run_logs(uuid4()) == []


def test_stored_log_is_frozen(chatty_run: UUID) -> None:
    log = read_run_logs(chatty_run)[0]
    with pytest.raises(AttributeError):
        log.message = "changed"  # type: ignore[misc]


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="flow_run_id must be a UUID or a UUID string, got int"):
        read_run_logs(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid UUID"):
        read_run_logs("not-a-uuid")
    with pytest.raises(TypeError, match="include_task_runs must be a bool"):
        read_run_logs(uuid4(), include_task_runs="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="drain_timeout must be a number"):
        read_run_logs(uuid4(), drain_timeout="5")  # type: ignore[arg-type]


def test_passing_a_state_explains_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"state\.state_details\.flow_run_id"):
        read_run_logs(Completed())  # type: ignore[arg-type]
