"""Each speed-up keeps behaviour: the template database and the heartbeat default."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import prefect.settings
import pytest
from conftest import STARTUP_TIMEOUT, double_flow
from prefect import flow, get_client, task
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from prefect_testkit import prefect_test_harness


def schema_of(database: Path) -> tuple[dict[str, object], list[tuple[str]]]:
    """Tables, columns, indexes and foreign keys, plus the Alembic head.

    Structural rather than the CREATE statements' text: Alembic's batch migrations
    rebuild some SQLite tables with their constraints in an order that differs
    between runs.
    """
    with closing(sqlite3.connect(database)) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        schema: dict[str, object] = {}
        for table in tables:
            indexes = {
                (
                    index[1],
                    index[2],
                    tuple(col[2] for col in db.execute(f"pragma index_info('{index[1]}')")),
                )
                for index in db.execute(f"pragma index_list('{table}')")
            }
            schema[table] = (
                sorted(db.execute(f"pragma table_info('{table}')")),
                indexes,
                {fk[2:] for fk in db.execute(f"pragma foreign_key_list('{table}')")},
            )
        heads = db.execute("select version_num from alembic_version").fetchall()
    return schema, heads


def test_the_template_is_a_migrated_database_and_a_corrupt_one_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_CACHE_DIR", str(tmp_path / "cache"))

    with prefect_test_harness(STARTUP_TIMEOUT, keep_files=True) as fresh:
        assert not fresh.database_from_template
        assert double_flow(1) == 2
    (template,) = (tmp_path / "cache").glob("sqlite-*.db")

    with prefect_test_harness(STARTUP_TIMEOUT, keep_files=True) as copied:
        assert copied.database_from_template
        assert double_flow(2) == 4
    try:
        fresh_schema = schema_of(fresh.database_file)
        assert fresh_schema[1], "no Alembic head recorded"
        assert schema_of(copied.database_file) == fresh_schema
        assert schema_of(template) == fresh_schema
    finally:
        shutil.rmtree(fresh.directory)
        shutil.rmtree(copied.directory)

    template.write_bytes(b"\0garbage" * 4096)
    with prefect_test_harness(STARTUP_TIMEOUT) as rebuilt:
        assert not rebuilt.database_from_template
        assert double_flow(3) == 6
    assert schema_of(template) == fresh_schema


@pytest.mark.skipif(
    not hasattr(prefect.settings, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"),
    reason="flow run heartbeats arrived in Prefect 3.6: nothing to turn off",
)
def test_heartbeats_are_off_unless_the_user_set_a_frequency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setting = prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY
    with prefect_test_harness(STARTUP_TIMEOUT):
        assert setting.value() is None
    with prefect.settings.temporary_settings({setting: 45}), prefect_test_harness(STARTUP_TIMEOUT):
        assert setting.value() == 45


@task
def step(x: int) -> int:
    return x + 1


@flow
def three_steps(x: int) -> int:
    return step(step(step(x)))


def test_three_task_flows_are_recorded_and_never_answered_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="prefect.client")
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        states = [three_steps(n, return_state=True) for n in range(20)]
        harness.flush()
        with get_client(sync_client=True) as client:
            for state in states:
                task_runs = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                    )
                )
                assert sorted(run.state_name for run in task_runs) == ["Completed"] * 3
    assert [state.result() for state in states] == [n + 3 for n in range(20)]
    retries = [r.getMessage() for r in caplog.records if "retryable status code" in r.getMessage()]
    assert retries == []
