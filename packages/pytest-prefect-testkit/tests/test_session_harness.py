"""Suites that start a real server: each pytester run groups many assertions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import FLOWS, STARTUP, pyproject

import pytest_prefect_testkit
from prefect_testkit_xdist import lease_port

ISOLATION_CHECK = """
from prefect import get_client
from prefect.utilities.asyncutils import run_coro_as_sync


def api(method, **kwargs):
    # The async client from sync code: Prefect 3.0's sync client lacks most of these calls.
    async def call():
        async with get_client() as client:
            return await getattr(client, method)(**kwargs)

    return run_coro_as_sync(call())


def assert_empty(client):
    assert client.read_flow_runs() == []
    assert client.read_task_runs() == []
    for read in ("read_deployments", "read_variables", "read_block_documents", "read_logs",
                 "read_artifacts"):
        assert api(read) == [], read
"""

AUTOUSE_SUITE = {
    "flows": FLOWS + ISOLATION_CHECK,
    "test_1_leaves_state": """
        from prefect import flow
        from prefect.artifacts import create_markdown_artifact
        from prefect.blocks.system import Secret
        from prefect.variables import Variable
        from flows import api, make

        def test_leaves_runs_deployments_blocks_variables(sync_prefect_client, prefect_harness):
            import prefect.settings
            assert prefect.settings.PREFECT_API_URL.value() == prefect_harness.api_url
            assert make(1) == 2 and make(2) == 4
            flow_id = sync_prefect_client.read_flow_runs()[0].flow_id
            api("create_deployment", flow_id=flow_id, name="leftover")
            Variable.set("leftover", "x")
            Secret(value="s3cr3t").save("leftover-secret")
            flow(lambda: create_markdown_artifact("# leftover", key="leftover"), name="art")()
            assert len(sync_prefect_client.read_flow_runs()) == 3
            assert len(api("read_artifacts")) == 1
        """,
    "test_2_isolated": """
        import pytest
        from flows import assert_empty, make

        pytestmark = pytest.mark.prefect_isolated

        def test_module_marker_gives_an_empty_database(sync_prefect_client):
            assert_empty(sync_prefect_client)
            make(3)

        def test_and_again_for_the_next_test(sync_prefect_client):
            assert_empty(sync_prefect_client)
            make(4)
        """,
    "test_3_isolated_forms": """
        import pytest
        from flows import assert_empty, make

        @pytest.mark.prefect_isolated
        class TestClassMarker:
            def test_first(self, sync_prefect_client):
                assert_empty(sync_prefect_client)
                make(5)

            def test_second(self, sync_prefect_client):
                assert_empty(sync_prefect_client)
                make(6)

        def test_fixture_form(prefect_clean_db, sync_prefect_client):
            assert_empty(sync_prefect_client)
            make(7)

        @pytest.mark.prefect_isolated
        def test_function_marker(sync_prefect_client):
            assert_empty(sync_prefect_client)
            make(8)

        def test_unmarked_tests_see_what_earlier_tests_left(sync_prefect_client):
            assert len(sync_prefect_client.read_flow_runs()) == 1
        """,
    "test_4_async_strict": """
        import pytest
        from flows import amake, make

        @pytest.mark.prefect_isolated
        @pytest.mark.asyncio
        async def test_function_loop(prefect_client, prefect_harness):
            assert str(prefect_client.api_url).rstrip("/") == prefect_harness.api_url
            assert await amake(1) == 1
            assert len(await prefect_client.read_flow_runs()) == 1

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop(prefect_client):
            assert await amake(2) == 2
            async with prefect_client as same:  # re-entering is allowed and keeps it open
                assert same is prefect_client
            assert len(await prefect_client.read_flow_runs()) == 2

        @pytest.mark.asyncio(loop_scope="session")
        async def test_session_loop(prefect_client):
            assert await amake(3) == 3
            assert len(await prefect_client.read_flow_runs()) == 3

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop_again(prefect_client):
            assert len(await prefect_client.read_flow_runs()) == 3

        def test_sync_after_async(sync_prefect_client):
            assert make(8) == 16
            assert len(sync_prefect_client.read_flow_runs()) == 4
        """,
    "test_5_nested": """
        import prefect.settings
        from prefect_testkit import prefect_test_harness
        from flows import make

        def test_nested_harness_is_separate_and_restores(prefect_harness, sync_prefect_client):
            outer_runs = len(sync_prefect_client.read_flow_runs())
            with prefect_test_harness(240) as inner:
                assert inner.api_url != prefect_harness.api_url
                assert inner.database_file != prefect_harness.database_file
                assert prefect.settings.PREFECT_API_URL.value() == inner.api_url
                make(9)
                from prefect import get_client
                with get_client(sync_client=True) as client:
                    assert len(client.read_flow_runs()) == 1
            assert prefect.settings.PREFECT_API_URL.value() == prefect_harness.api_url
            make(10)
            assert len(sync_prefect_client.read_flow_runs()) == outer_runs + 1
        """,
    "test_6_logs": """
        import logging
        from flows import make

        def test_caplog_sees_flow_and_task_logs(caplog):
            caplog.set_level(logging.INFO)
            make(11)
            assert "made 11" in caplog.text
            assert "doubling 11" in caplog.text

        def test_prefect_logs_fixture(prefect_logs):
            make(12)
            prefect_logs.assert_logged("made 12", "INFO")
            prefect_logs.assert_logged("doubling 12")
        """,
    "test_7_failures": """
        from prefect import get_run_logger
        from flows import double, make

        def test_fails_after_a_flow():
            make(13)
            assert False, "deliberate failure"

        def test_calls_a_task_body_directly():
            double.fn(2)
        """,
}


def test_autouse_session_harness_in_strict_asyncio_mode(pytester: pytest.Pytester) -> None:
    pyproject(pytester, "prefect_harness_autouse = true")
    pytester.makepyfile(**AUTOUSE_SUITE)
    pytester.syspathinsert()
    result = pytester.runpytest(STARTUP, "--prefect-keep-db", "-p", "no:randomly")
    result.assert_outcomes(passed=16, failed=2)
    result.stdout.fnmatch_lines(
        [
            "prefect-testkit: Prefect 3.*; server: started lazily by the first test*",
            "prefect-testkit: database: */dirs/<worker>_harness_<n>/prefect.db (kept after the "
            "run); harness for: every test",
            "*_ test_fails_after_a_flow _*",
            "*deliberate failure*",
            "*- Prefect server log, last 30 lines (http://127.0.0.1:*/api, running; "
            "*/server.log) -*",
            "*_ test_calls_a_task_body_directly _*",
            "*MissingContextError*",
            "*- prefect-testkit hint -*",
            "*call_fn*",
            "*- Prefect server log, last 30 lines*",
            "prefect-testkit: main: server http://127.0.0.1:*/api (pid *), database */prefect.db, "
            "healthy after * s, 7 database reset(s) in * s",
            "prefect-testkit: main: kept database */prefect.db and server log */server.log",
        ]
    )
    output = result.stdout.str()
    # The hint is only for the run logger used outside a run, not for every failure.
    assert output.count("- prefect-testkit hint -") == 1
    kept = re.search(r"kept database (\S+) and server log (\S+)", output)
    assert kept is not None
    database, log = Path(kept.group(1)), Path(kept.group(2))
    assert database.is_file()
    assert log.is_file()
    shutil.rmtree(database.parent)


ASYNC_AUTO_SUITE = {
    "flows": FLOWS,
    "test_auto": """
        import pytest
        from flows import amake

        def test_port_is_from_the_configured_range(prefect_harness):
            assert 18700 <= prefect_harness.port <= 18799

        async def test_function_loop(prefect_client):
            await amake(1)
            assert len(await prefect_client.read_flow_runs()) == 1

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop(prefect_client):
            await amake(2)
            assert len(await prefect_client.read_flow_runs()) == 2

        @pytest.mark.asyncio(loop_scope="session")
        async def test_session_loop(prefect_client):
            assert len(await prefect_client.read_flow_runs()) == 2

        @pytest.mark.prefect_isolated
        @pytest.mark.asyncio(loop_scope="session")
        async def test_isolated_async(prefect_client):
            assert await prefect_client.read_flow_runs() == []

        def test_plain_test_does_not_need_the_harness():
            pass
        """,
}


def test_auto_asyncio_mode_every_loop_scope_and_options(pytester: pytest.Pytester) -> None:
    pyproject(pytester, 'prefect_port_range = "18700-18799"', asyncio_mode="auto")
    pytester.makepyfile(**ASYNC_AUTO_SUITE)
    pytester.syspathinsert()
    result = pytester.runpytest(STARTUP)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*harness for: tests that request it",
            "prefect-testkit: main: server http://127.0.0.1:187*/api*1 database reset(s)*",
        ]
    )


def test_without_pytest_asyncio(pytester: pytest.Pytester) -> None:
    # A subprocess, so that pytest-asyncio is not imported already by this session.
    pyproject(pytester, asyncio_mode=None)
    pytester.makepyfile(
        flows=FLOWS,
        test_plain="""
            import asyncio
            import sys
            from flows import amake, make

            def test_async_client_from_asyncio_run(prefect_client, sync_prefect_client):
                assert "pytest_asyncio" not in sys.modules
                assert make(1) == 2

                async def check():
                    assert await amake(2) == 2
                    return len(await prefect_client.read_flow_runs())

                assert asyncio.run(check()) == 2
                assert asyncio.run(check()) == 3
                assert len(sync_prefect_client.read_flow_runs()) == 3

            def test_autouse_from_the_command_line_needs_no_fixture():
                from prefect import get_client
                make(3)
                with get_client(sync_client=True) as client:
                    assert len(client.read_flow_runs()) == 4
            """,
    )
    result = pytester.runpytest_subprocess(
        STARTUP, "-p", "no:asyncio", "--prefect-harness-autouse", timeout=400
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*harness for: every test"])
    result.stdout.no_fnmatch_line("plugins:*asyncio-*")


def test_a_failed_start_errors_each_test_once_without_retrying(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The only port the harness may use is held by this test, and the allocator is told
    # not to wait: a real, fast startup failure.
    monkeypatch.setenv("PREFECT_TESTKIT_LEASE_TIMEOUT", "0")
    pyproject(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_needs_harness(prefect_harness, n):
            pass

        @pytest.mark.prefect_isolated
        def test_isolated():
            pass

        def test_plain():
            pass
        """
    )
    with lease_port(range(18650, 18651)):
        result = pytester.runpytest("--prefect-port-range=18650-18650")
    result.assert_outcomes(passed=1, errors=4)
    output = result.stdout.str()
    # Each test that needs the harness shows the error of the single attempt. Counted in
    # the tracebacks only: under CI=true pytest also prints untruncated summary lines.
    raised = [
        line
        for line in output.splitlines()
        if line.startswith("E ")
        # The public name: the harness's own error, not the allocator's it chains.
        and line.split(maxsplit=1)[1].startswith("prefect_testkit.LeasePoolExhaustedError: ")
    ]
    assert len(raised) == 4
    result.stdout.fnmatch_lines(
        [
            "prefect-testkit: main: the server failed to start (1 attempt, not retried): "
            "LeasePoolExhaustedError: *18650*"
        ]
    )


def test_plugin_modules_do_not_import_pytest_asyncio() -> None:
    sources = Path(pytest_prefect_testkit.__file__).parent.glob("*.py")
    assert not [path for path in sources if "pytest_asyncio" in path.read_text()]
