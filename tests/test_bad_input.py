"""Every public parameter, environment variable and pytest option, given a bad value.

Each must fail before anything starts with a HarnessConfigError (never an error class of
a package below the harness) whose message names the value, and leave no process, lease
or directory behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from prefect_testkit import HarnessConfigError, prefect_test_harness
from prefect_testkit_xdist import list_leases

PARAMETERS = [
    ({"server_startup_timeout": 0}, "got 0"),
    ({"server_startup_timeout": -1.5}, "got -1.5"),
    ({"server_startup_timeout": "soon"}, "'soon'"),
    ({"server_startup_timeout": float("nan")}, "nan"),
    ({"port_range": "9000-8000"}, "9000-8000"),
    ({"port_range": (0, 10)}, "port_range"),
    ({"port_range": "every port"}, "every port"),
    ({"keep_files": "yes"}, "'yes'"),
    ({"initial_database": "/no/such.db"}, "/no/such.db"),
    ({"database": "mysql"}, "'mysql'"),
    ({"database": "postgresql", "initial_database": __file__}, "cannot seed a PostgreSQL"),
]

ENVIRONMENT = [
    ("PREFECT_TESTKIT_PORT_RANGE", "70000-70010", "70000"),
    ("PREFECT_TESTKIT_LOCK_DIR", "relative/locks", "relative/locks"),
    ("PREFECT_TESTKIT_LEASE_TIMEOUT", "-1", "-1"),
    ("PREFECT_TESTKIT_SERVER_FACTORY", "maybe", "'maybe'"),
    ("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "forever", "'forever'"),
    ("PREFECT_TESTKIT_TEMPLATE_CACHE", "perhaps", "'perhaps'"),
    ("PREFECT_TESTKIT_CACHE_DIR", "cache", "'cache'"),
    ("PREFECT_TESTKIT_SQLITE_IMMEDIATE", "2", "'2'"),
    ("PREFECT_TESTKIT_API_AUTH", "sometimes", "'sometimes'"),
    ("PREFECT_TESTKIT_DATABASE", "oracle", "'oracle'"),
]

# Read only when the backend is PostgreSQL.
POSTGRESQL_ENVIRONMENT = [
    ("PREFECT_TESTKIT_POSTGRES_URL", "mysql://user:secret@db/prefect", "mysql://user:***@db"),
    ("PREFECT_TESTKIT_POSTGRES_URL", "postgresql://127.0.0.1/prefect", "names no user"),
    ("PREFECT_TESTKIT_POSTGRES_BIN", "/no/such/bin", "/no/such/bin"),
]

PYTEST_OPTIONS = [
    (["--prefect-startup-timeout=0"], "--prefect-startup-timeout"),
    (["--prefect-startup-timeout=soon"], "soon"),
    (["--prefect-port-range=9000-8000"], "9000-8000"),
    (["--prefect-shard=3/3"], "3/3"),
    (["--prefect-shard=first"], "first"),
    (["-o", "prefect_harness_autouse=maybe"], "maybe"),
    (["-o", "prefect_startup_timeout=-5"], "-5"),
    (["-o", "prefect_port_range=1-2-3"], "1-2-3"),
    (["--prefect-database=mysql"], "mysql"),
    (["-o", "prefect_database=oracle"], "oracle"),
]


def our_leases() -> list[object]:
    return [lease for lease in list_leases() if lease.pid == os.getpid()]


@pytest.fixture
def nothing_left_behind() -> object:
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    leases = our_leases()  # the plugin's: the session's private Prefect home
    yield
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= children
    assert our_leases() == leases


@pytest.mark.usefixtures("nothing_left_behind")
@pytest.mark.parametrize(("kwargs", "named"), PARAMETERS)
def test_bad_parameter(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(HarnessConfigError, match=re.escape(named)), prefect_test_harness(**kwargs):  # type: ignore[arg-type]
        pytest.fail("started")


@pytest.mark.usefixtures("nothing_left_behind")
@pytest.mark.parametrize(("name", "value", "named"), ENVIRONMENT)
def test_bad_environment_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.setenv(name, value)
    with (
        pytest.raises(HarnessConfigError, match=re.escape(named)) as caught,
        prefect_test_harness(),
    ):
        pytest.fail("started")
    assert name in str(caught.value)


@pytest.mark.usefixtures("nothing_left_behind")
@pytest.mark.parametrize(("name", "value", "named"), POSTGRESQL_ENVIRONMENT)
def test_bad_postgresql_environment_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.delenv("PREFECT_TESTKIT_POSTGRES_URL", raising=False)
    monkeypatch.setenv(name, value)
    with (
        pytest.raises(HarnessConfigError, match=re.escape(named)) as caught,
        prefect_test_harness(database="postgresql"),
    ):
        pytest.fail("started")
    assert name in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(("args", "named"), PYTEST_OPTIONS)
def test_bad_pytest_option_is_a_usage_error(tmp_path: Path, args: list[str], named: str) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert named in result.stderr
