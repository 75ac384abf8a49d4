"""A server killed mid-suite: the running test fails with the cause, the next gets a new one."""

from __future__ import annotations

import re

import pytest
from conftest import FLOWS, STARTUP, pyproject

KILLS = """
import os
import signal
import time

import pytest
from prefect.variables import Variable
from flows import make

servers = []


def kill(pid):
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)


@pytest.fixture(scope="session")
def seeded(prefect_harness):
    # A session fixture that fills the server: it must run again for the new one.
    Variable.set("seeded_for", str(prefect_harness.server_pid))
    return prefect_harness.server_pid


def test_first(prefect_harness, seeded):
    servers.append(prefect_harness.server_pid)
    assert make(1) == 2


def test_server_killed(prefect_harness):
    kill(prefect_harness.server_pid)
    make(2)


def test_gets_a_new_server(prefect_harness, seeded):
    assert prefect_harness.server_pid not in servers
    assert seeded == prefect_harness.server_pid
    assert Variable.get("seeded_for") == str(prefect_harness.server_pid)
    assert make(3) == 6
    servers.append(prefect_harness.server_pid)


def test_server_killed_again(prefect_harness):
    kill(prefect_harness.server_pid)
    make(4)


def test_after_the_second_death(prefect_harness):
    assert prefect_harness.server_pid == servers[-1]
    make(5)
"""


def test_one_death_is_survived_a_second_fails_fast(pytester: pytest.Pytester) -> None:
    pyproject(pytester)
    pytester.makepyfile(flows=FLOWS, test_kills=KILLS)
    pytester.syspathinsert()
    # One xdist worker: the summary line travels from the worker, as in a parallel run.
    result = pytester.runpytest_subprocess("-n", "1", STARTUP, timeout=600)
    result.assert_outcomes(passed=2, failed=3)
    output = result.stdout.str()
    # Each failing test names the death: exit code -9, from the harness's dead-server answer.
    parts = re.split(r"^_{3,} (test_\w+) _{3,}$", output, flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    for test in ("test_server_killed", "test_server_killed_again", "test_after_the_second_death"):
        assert "died during the test" in sections[test], sections[test]
        assert "exit code -9" in sections[test], sections[test]
    result.stdout.fnmatch_lines(
        [
            "prefect-testkit: server for gw0 died during test "
            "test_kills.py::test_server_killed (exit -9); restarted",
            "prefect-testkit: server for gw0 died during test "
            "test_kills.py::test_server_killed_again (exit -9); not restarted*",
        ]
    )


def test_an_autouse_harness_is_restarted_for_tests_that_do_not_name_it(
    pytester: pytest.Pytester,
) -> None:
    pyproject(pytester, "prefect_harness_autouse = true")
    pytester.makepyfile(
        flows=FLOWS,
        test_autouse="""
        import os
        import signal
        import time

        import prefect.settings
        from flows import make

        urls = []

        def test_server_killed(prefect_harness):
            urls.append(prefect.settings.PREFECT_API_URL.value())
            os.kill(prefect_harness.server_pid, signal.SIGKILL)
            time.sleep(0.5)
            make(1)

        def test_runs_a_flow_on_the_new_server():
            assert prefect.settings.PREFECT_API_URL.value() not in (None, *urls)
            assert make(2) == 4
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(STARTUP, timeout=600)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "prefect-testkit: server for main died during test "
            "test_autouse.py::test_server_killed (exit -9); restarted"
        ]
    )
