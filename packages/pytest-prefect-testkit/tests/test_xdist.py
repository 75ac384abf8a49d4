"""Real xdist workers, one pytester subprocess run per --dist mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import FLOWS, STARTUP, pyproject

from prefect_testkit.testing import postgres_unavailable
from prefect_testkit_xdist import list_leases

XDIST_FILE = """
import logging

import pytest
from flows import make

pytestmark = pytest.mark.xdist_group("{group}")


def test_flow_{group}(sync_prefect_client, prefect_harness, worker_id):
    make(1)
    runs = sync_prefect_client.read_flow_runs()
    assert runs


@pytest.mark.prefect_isolated
def test_isolated_{group}(sync_prefect_client):
    assert sync_prefect_client.read_flow_runs() == []
    make(2)


def test_caplog_{group}(caplog):
    caplog.set_level(logging.INFO)
    make(3)
    assert "made 3" in caplog.text
    assert "doubling 3" in caplog.text


def test_prefect_logs_{group}(prefect_logs):
    make(4)
    prefect_logs.assert_logged("doubling 4")
"""

CRASH_FILE = """
import os
from flows import make

def test_worker_dies_mid_run(prefect_harness):
    make(5)
    os._exit(3)
"""


@pytest.mark.parametrize("dist", ["load", "loadscope", "loadfile", "loadgroup", "worksteal"])
def test_two_workers_each_get_their_own_harness(pytester: pytest.Pytester, dist: str) -> None:
    pyproject(pytester, "prefect_harness_autouse = true")
    files = {
        "flows": FLOWS,
        "test_a": XDIST_FILE.format(group="a"),
        "test_b": XDIST_FILE.format(group="b"),
    }
    crash = dist == "load"
    if crash:
        # The replacement worker must lease a fresh port and directory, not collide.
        files["test_c"] = CRASH_FILE
    pytester.makepyfile(**files)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", dist, STARTUP, "-p", "no:randomly", timeout=600
    )
    if crash:
        result.assert_outcomes(passed=8, failed=1)
        result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_worker_dies*"])
    else:
        result.assert_outcomes(passed=8)
    servers = re.findall(
        r"^prefect-testkit: (gw\d+): server (\S+) \(pid \d+\), database (\S+),",
        result.stdout.str(),
        re.MULTILINE,
    )
    # A crashed worker sends no summary, so with the crash only the survivor reports.
    assert len(servers) >= (1 if crash else 2), result.stdout.str()
    assert len({worker for worker, _, _ in servers}) == len(servers)
    assert len({url for _, url, _ in servers}) == len(servers)
    assert len({db for _, _, db in servers}) == len(servers)
    # Every worker, the crashed one included, has given its port and directory back.
    run_prefix = Path(servers[0][2]).parent.name.split("_")[0]
    assert [lease for lease in list_leases() if lease.run_id.startswith(run_prefix)] == []


@pytest.mark.skipif(
    postgres_unavailable() is not None,
    reason=f"PostgreSQL tests skipped: {postgres_unavailable()}",
)
def test_two_workers_on_postgresql_get_two_databases_on_one_server(
    pytester: pytest.Pytester,
) -> None:
    pyproject(pytester, "prefect_harness_autouse = true")
    pytester.makepyfile(
        flows=FLOWS, test_a=XDIST_FILE.format(group="a"), test_b=XDIST_FILE.format(group="b")
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "--prefect-database=postgresql", STARTUP, timeout=600
    )
    result.assert_outcomes(passed=8)  # the isolation marker's tests included
    result.stdout.fnmatch_lines(["prefect-testkit: database: PostgreSQL on *"])
    databases = re.findall(
        r"^prefect-testkit: gw\d+: .*, database postgresql\+asyncpg://[^@]+@([^/]+)/(ptk_\w+),",
        result.stdout.str(),
        re.MULTILINE,
    )
    assert len(databases) == 2, result.stdout.str()
    assert len({server for server, _ in databases}) == 1
    assert len({name for _, name in databases}) == 2
