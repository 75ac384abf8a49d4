"""A Prefect client refused for another API fails the test, even where the error was
swallowed, with the URL and the opt-out.

One subprocess run holds every case (each run starts a server), in a fresh user home.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import FLOWS, STARTUP, assert_removed, connections, private_home, pyproject

ESCAPE_TESTS = """
import os

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import make

OTHER = os.environ["OTHER_API"]


def swallowed_client(url=OTHER):
    with temporary_settings({PREFECT_API_URL: url}):
        try:
            get_client(sync_client=True)
        except Exception:
            pass


def test_a_swallowed_refusal_fails_the_test(prefect_harness):
    make(1)
    swallowed_client()


@pytest.fixture
def refuses_at_teardown(prefect_harness):
    yield
    swallowed_client(OTHER + "/teardown")


def test_a_refusal_in_a_fixture_errors_it(refuses_at_teardown):
    pass


def test_a_failing_test_keeps_its_error_and_gains_the_url(prefect_harness):
    swallowed_client(OTHER + "/failing")
    assert make(3) == 5, "its own failure"


def test_the_next_test_is_not_blamed(prefect_harness):
    assert make(2) == 4
"""


def test_the_escape_guard_in_a_fresh_home(
    pytester: pytest.Pytester,
    user_home: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pyproject(pytester)
    pytester.makepyfile(
        flows=FLOWS,
        test_escape=ESCAPE_TESTS,
    )
    pytester.syspathinsert()
    other = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    monkeypatch.setenv("OTHER_API", other)
    result = pytester.runpytest_subprocess(STARTUP, "-p", "no:randomly", timeout=600)
    result.assert_outcomes(passed=2, failed=2, errors=1)
    # The escape guard: a refusal in a fixture's teardown errors that test; the test whose
    # code swallowed the refusal fails with the URL and the opt-out; the next is clean.
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a_refusal_in_a_fixture_errors_it _*",
            "prefect-testkit: during this test's teardown, 1 Prefect client was refused for an "
            "API other than the harness's *",
            f"    {other}/teardown",
            "*_ test_a_swallowed_refusal_fails_the_test _*",
            "prefect-testkit: during this test, 1 Prefect client was refused for an API other "
            "than the harness's *",
            f"    {other}",
            f"A Prefect client was created for {other} while the harness serves "
            "http://127.0.0.1:*/api: *PREFECT_TESTKIT_ALLOW_OTHER_APIS=true to allow other APIs.",
            # A test that fails anyway keeps its own error; the URLs come as a section.
            "*_ test_a_failing_test_keeps_its_error_and_gains_the_url _*",
            "E * AssertionError: its own failure",
            "*- prefect-testkit: Prefect clients refused for other APIs -*",
            "prefect-testkit: during this test, 1 Prefect client was refused *",
            f"    {other}/failing",
        ]
    )
    outcomes = {
        line.split(" ", 1)[1].split(" - ")[0]
        for line in result.outlines
        if line.startswith(("FAILED ", "ERROR "))
    }
    assert outcomes == {
        "test_escape.py::test_a_swallowed_refusal_fails_the_test",
        "test_escape.py::test_a_failing_test_keeps_its_error_and_gains_the_url",
        "test_escape.py::test_a_refusal_in_a_fixture_errors_it",
    }
    assert connections(listener) == 0
    # A fresh home stays empty: no ~/.prefect; the private home is gone with its lease.
    assert list(user_home.iterdir()) == []
    assert_removed(private_home(result.stdout.str()))
