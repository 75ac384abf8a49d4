"""The PostgreSQL backend on a real server: PREFECT_TESTKIT_POSTGRES_URL's, else a local cluster.

Skipped, with the reason in pytest's summary, when neither is available.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import STARTUP_TIMEOUT, double_flow, wait_until_gone
from prefect import flow, get_client, task
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_testkit import (
    HarnessConfigError,
    HarnessHandle,
    HarnessStartupError,
    prefect_test_harness,
)
from prefect_testkit._postgres.cluster import (
    ClusterState,
    local_cluster,
    state_dir,
)
from prefect_testkit._postgres.database import (
    DATABASE_PREFIX,
    PostgresServer,
    configured_server,
    template_name,
)
from prefect_testkit.testing import postgres_unavailable
from prefect_testkit_xdist import lease_port, list_leases

UNAVAILABLE = postgres_unavailable()
needs_postgres = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"PostgreSQL tests skipped: {UNAVAILABLE}"
)
LOCAL_ONLY = pytest.mark.skipif(
    configured_server() is not None, reason="tests the local cluster; a URL is configured"
)


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """The server the harnesses will use, kept up (if local) for the whole test."""
    configured = configured_server()
    if configured is not None:
        yield configured
        return
    with local_cluster(STARTUP_TIMEOUT) as local:
        yield local


def fetch(server: PostgresServer, query: str, *args: object, database: str | None = None) -> list:
    async def run() -> list:
        conn = await server.connect(database)
        try:
            return [tuple(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return run_coro_as_sync(run())


def harness_databases(server: PostgresServer) -> set[str]:
    rows = fetch(server, "SELECT datname FROM pg_database WHERE datname LIKE 'ptk\\_%'")
    return {name for (name,) in rows if not name.startswith("ptk_template_")}


def pg_harness(**kwargs: Any) -> AbstractContextManager[HarnessHandle]:
    return prefect_test_harness(STARTUP_TIMEOUT, database="postgresql", **kwargs)


@needs_postgres
def test_a_flow_runs_in_a_database_of_its_own_that_is_dropped_on_exit(
    server: PostgresServer,
) -> None:
    with pg_harness() as harness:
        assert harness.database_backend == "postgresql"
        assert harness.database_file is None
        assert harness.database_name is not None
        assert harness.database_name.startswith(f"{DATABASE_PREFIX}local_main_")
        assert server.url.password not in harness.database_location
        assert f"/{harness.database_name}" in harness.database_location
        assert harness.database_name in harness_databases(server)
        assert double_flow(21) == 42
        rows = fetch(server, "SELECT count(*) FROM flow_run", database=harness.database_name)
        assert rows == [(1,)]
    assert harness.database_name not in harness_databases(server)
    assert not harness.directory.exists()


@needs_postgres
def test_the_template_is_migrated_once_and_then_cloned(server: PostgresServer) -> None:
    with pg_harness():
        pass
    with pg_harness() as harness:
        assert harness.database_from_template
    template = fetch(
        server,
        "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1",
        template_name(),
    )
    assert template == [(True, False)]


@needs_postgres
def test_the_environment_selects_postgresql_and_reset_empties_it(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_DATABASE", "postgresql")
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert harness.database_backend == "postgresql"
        double_flow(1)
        harness.flush()
        seconds = harness.reset_database()

        async def read() -> tuple[int, int]:
            async with get_client() as client:
                return len(await client.read_flow_runs()), len(await client.read_block_types())

        flow_runs, block_types = run_coro_as_sync(read())
        assert flow_runs == 0
        assert block_types > 0  # what the server registers at startup stays, as in a fresh one
        assert seconds < 10


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable status code 503" in record.getMessage():
            self.retries += 1


@task
def square(x: int) -> int:
    time.sleep(0.05)
    return x * x


@flow
def fifty_concurrent_squares() -> int:
    return sum(future.result() for future in [square.submit(i) for i in range(50)])


@needs_postgres
def test_fifty_concurrent_tasks_complete_without_a_single_503(server: PostgresServer) -> None:
    client_logger = logging.getLogger("prefect.client")
    counter = _RetryCounter()
    level = client_logger.level
    client_logger.addHandler(counter)
    client_logger.setLevel(logging.DEBUG)
    try:
        with pg_harness() as harness:
            assert fifty_concurrent_squares() == sum(i * i for i in range(50))
            harness.flush()
            states = fetch(
                server, "SELECT state_name FROM task_run", database=harness.database_name
            )
    finally:
        client_logger.removeHandler(counter)
        client_logger.setLevel(level)
    assert sorted(states) == [("Completed",)] * 50
    assert counter.retries == 0


HOLDER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from prefect_testkit import prefect_test_harness
    from prefect_testkit._postgres.cluster import ClusterState, state_dir

    with prefect_test_harness(120, database="postgresql") as harness:
        state = ClusterState.read(state_dir())
        print(json.dumps({
            "database": harness.database_name,
            "supervisor": state.supervisor_pid if state else None,
        }), flush=True)
        time.sleep(600)
    """
)


def start_holder(run_id: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """A harness in another process, as worker gw0 of run `run_id`, reporting its database."""
    env = {**os.environ, "PYTEST_XDIST_TESTRUNUID": run_id, "PYTEST_XDIST_WORKER": "gw0"}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line, f"the holder exited with {holder.wait()} before reporting"
    return holder, json.loads(line)


def kill_holder(holder: subprocess.Popen[str]) -> None:
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    if holder.stdout is not None:
        holder.stdout.close()


@needs_postgres
def test_clean_drops_exactly_the_databases_of_a_killed_run(server: PostgresServer) -> None:
    killed, report = start_holder("0badc0ffee0123456789")
    try:
        killed_database = report["database"]
        assert isinstance(killed_database, str)
        assert killed_database.startswith(f"{DATABASE_PREFIX}0badc0ffee01_gw0_")
    finally:
        kill_holder(killed)
    with pg_harness() as live:
        before = harness_databases(server)
        assert {killed_database, live.database_name} <= before
        cli = Path(sys.executable).with_name("prefect-testkit")
        cleaned = subprocess.run(
            [str(cli), "clean"], capture_output=True, text=True, timeout=120, check=True
        )
        assert f"dropped database {killed_database}" in cleaned.stdout + cleaned.stderr
        assert harness_databases(server) == before - {killed_database}


@needs_postgres
@LOCAL_ONLY
def test_the_local_cluster_stops_when_its_users_are_killed_and_drops_their_leftovers() -> None:
    holder, report = start_holder("feedfacecafe0123")
    supervisor = report["supervisor"]
    assert isinstance(supervisor, int)
    (postmaster,) = psutil.Process(supervisor).children()
    kill_holder(holder)
    # The supervisor notices no user is left, stops postgres and exits.
    assert wait_until_gone(supervisor, within=30)
    assert wait_until_gone(postmaster.pid, within=5)
    assert ClusterState.read(state_dir()) is None
    with pg_harness():
        log = (state_dir() / "supervisor.log").read_text()
    assert f"dropped leftover database {report['database']}" in log


def _nothing_left(before_leases: list[object], children: list[psutil.Process]) -> None:
    assert list_leases() == before_leases
    assert psutil.Process().children(recursive=True) == children


def _expect_startup_error(
    monkeypatch: pytest.MonkeyPatch, url: str, *expected: str
) -> HarnessStartupError:
    monkeypatch.setenv("PREFECT_TESTKIT_POSTGRES_URL", url)
    leases, children = list_leases(), psutil.Process().children(recursive=True)
    with pytest.raises(HarnessStartupError) as caught, pg_harness():
        pytest.fail("the harness started")
    for text in expected:
        assert text in str(caught.value)
    _nothing_left(leases, children)
    return caught.value


@needs_postgres
def test_an_unreachable_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with lease_port() as lease:
        lease.socket.close()  # the port stays ours, and nothing listens on it
        _expect_startup_error(
            monkeypatch,
            f"postgresql://someone:secret@127.0.0.1:{lease.port}/postgres",
            f"PostgreSQL at 127.0.0.1:{lease.port} is unreachable",
            "PREFECT_TESTKIT_POSTGRES_URL",
        )


@needs_postgres
def test_wrong_credentials_are_named(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url.set(password="not-the-password").render_as_string(hide_password=False)
    error = _expect_startup_error(
        monkeypatch, url, f"refused the login of {server.url.username!r}", "password"
    )
    assert "not-the-password" not in str(error)


@needs_postgres
def test_a_role_without_createdb_is_told_how_to_grant_it(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "ptk_test_no_createdb"
    try:
        fetch(server, f"DROP ROLE IF EXISTS {role}")
        fetch(server, f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD 'pw'")
    except Exception as exc:  # a configured server may not let us create roles
        pytest.skip(f"cannot create a test role on {server.where}: {exc}")
    try:
        url = server.url.set(username=role, password="pw").render_as_string(hide_password=False)
        databases = harness_databases(server)
        _expect_startup_error(
            monkeypatch, url, f"role {role!r}", "may not create databases", "CREATEDB"
        )
        assert harness_databases(server) == databases
    finally:
        fetch(server, f"DROP ROLE IF EXISTS {role}")


@needs_postgres
def test_a_template_in_use_is_named_with_who_uses_it(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_harness():
        pass  # the template exists
    template = template_name()
    fetch(server, f'ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS true')
    dsn = server.url.set(drivername="postgresql", database=template)
    intruder = subprocess.Popen(
        [sys.executable, "-c", INTRUDER_SCRIPT, dsn.render_as_string(hide_password=False)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert intruder.stdout is not None
        assert intruder.stdout.readline() == "connected\n"
        with pytest.raises(HarnessStartupError) as caught, pg_harness():
            pytest.fail("the harness started from a template in use")
    finally:
        intruder.kill()
        intruder.communicate()
        fetch(server, f'ALTER DATABASE "{template}" WITH ALLOW_CONNECTIONS false')
    assert f"template database {template}" in str(caught.value)
    assert "is in use (pid " in str(caught.value)


INTRUDER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, asyncpg

    async def main():
        connection = await asyncpg.connect(sys.argv[1])
        print("connected", flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def test_missing_postgresql_binaries_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PREFECT_TESTKIT_POSTGRES_URL", raising=False)
    monkeypatch.setenv("PREFECT_TESTKIT_POSTGRES_BIN", str(tmp_path))
    leases, children = list_leases(), psutil.Process().children(recursive=True)
    with pytest.raises(HarnessConfigError) as caught, pg_harness():
        pytest.fail("the harness started without PostgreSQL")
    assert "apt install postgresql" in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    _nothing_left(leases, children)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://user@127.0.0.1/db", "is not a PostgreSQL URL"),
        ("not a url", "is not a database URL"),
        ("postgresql://127.0.0.1:5432/postgres", "names no user"),
        ("postgresql+psycopg2://u:hidden@127.0.0.1/db", "***"),
    ],
)
def test_a_bad_postgres_url_is_a_config_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_POSTGRES_URL", url)
    with pytest.raises(HarnessConfigError) as caught, pg_harness():
        pytest.fail("the harness accepted a bad URL")
    assert expected in str(caught.value)
    assert "hidden" not in str(caught.value)


def test_postgresql_cannot_start_from_a_sqlite_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.db"
    seed.write_bytes(b"")
    with (
        pytest.raises(HarnessConfigError, match="cannot seed a PostgreSQL database"),
        pg_harness(initial_database=seed),
    ):
        pytest.fail("accepted")


def test_an_unknown_backend_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        pytest.raises(HarnessConfigError, match="'sqlite' or 'postgresql'"),
        prefect_test_harness(database="mysql"),
    ):
        pytest.fail("accepted")
    monkeypatch.setenv("PREFECT_TESTKIT_DATABASE", "postgres")
    with (
        pytest.raises(HarnessConfigError, match="PREFECT_TESTKIT_DATABASE='postgres'"),
        prefect_test_harness(),
    ):
        pytest.fail("accepted")
