"""Options, sharding and laziness: everything that needs no Prefect server."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from conftest import pyproject

from pytest_prefect_testkit import parse_shard, shard_of

PLAIN_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(40))
def test_numbered(n):
    pass

class TestGroup:
    def test_one(self):
        pass

    def test_two(self):
        pass
"""


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--prefect-startup-timeout=soon"], [], "--prefect-startup-timeout='soon'"),
        (["--prefect-startup-timeout=0"], [], "positive number of seconds"),
        (["--prefect-startup-timeout=-3"], [], "--prefect-startup-timeout='-3'"),
        ([], ['prefect_startup_timeout = "nan"'], "ini option prefect_startup_timeout='nan'"),
        (["--prefect-port-range=9000-8000"], [], "--prefect-port-range='9000-8000'"),
        (["--prefect-port-range=70000-70010"], [], "1 <= LOW <= HIGH <= 65535"),
        ([], ['prefect_port_range = "eighty"'], "ini option prefect_port_range='eighty'"),
        (["--prefect-shard=3/3"], [], "0 <= INDEX < TOTAL"),
        (["--prefect-shard=0/0"], [], "at least 1"),
        (["--prefect-shard=-1/2"], [], "--prefect-shard='-1/2'"),
        (["--prefect-shard=first"], [], "expected INDEX/TOTAL"),
        ([], ['prefect_harness_autouse = "maybe"'], "set it to true or false"),
    ],
)
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: list[str], expected: str
) -> None:
    pyproject(pytester, *ini)
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()
    result.stdout.no_fnmatch_line("*test_never_runs*")


def test_bad_bazel_shard_environment_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject(pytester)
    pytester.makepyfile("def test_never_runs(): pass")
    monkeypatch.setenv("TEST_TOTAL_SHARDS", "3")
    monkeypatch.setenv("TEST_SHARD_INDEX", "3")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "TEST_SHARD_INDEX=3" in result.stderr.str()
    monkeypatch.setenv("TEST_SHARD_INDEX", "1")
    result = pytester.runpytest("--prefect-shard=2/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "conflicts with Bazel's shard 1/3" in result.stderr.str()


def passed_nodeids(pytester: pytest.Pytester, *args: str) -> list[str]:
    recorder = pytester.inline_run(*args)
    reports = recorder.getreports("pytest_runtest_logreport")
    assert not [r for r in reports if r.failed]
    return [r.nodeid for r in reports if r.when == "call" and r.passed]


def test_three_shards_cover_the_suite_once(pytester: pytest.Pytester) -> None:
    pyproject(pytester)
    pytester.makepyfile(test_plain=PLAIN_SUITE, test_more=PLAIN_SUITE)
    everything = passed_nodeids(pytester)
    assert len(everything) == 84
    shards = [passed_nodeids(pytester, f"--prefect-shard={i}/3") for i in range(3)]
    combined = [nodeid for shard in shards for nodeid in shard]
    assert sorted(combined) == sorted(everything)
    assert len(set(combined)) == len(combined)
    assert all(shards), "every shard should get some of 84 tests"
    for index, shard in enumerate(shards):
        assert {shard_of(nodeid, 3) for nodeid in shard} == {index}
    # Stable: the same split whatever the order the tests are collected in.
    reversed_order = passed_nodeids(
        pytester, "--prefect-shard=1/3", "test_more.py", "test_plain.py"
    )
    assert sorted(reversed_order) == sorted(shards[1])


def test_shard_is_crc32_of_the_node_id() -> None:
    nodeid = "tests/test_x.py::test_y[3]"
    assert shard_of(nodeid, 7) == zlib.crc32(nodeid.encode()) % 7
    assert parse_shard(" 2 / 5 ").index == 2


def test_bazel_sharding_protocol(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pyproject(pytester)
    pytester.makepyfile(test_plain=PLAIN_SUITE)
    expected = passed_nodeids(pytester, "--prefect-shard=1/3")
    status = tmp_path / "shard-status"
    xml = tmp_path / "test.xml"
    monkeypatch.setenv("TEST_TOTAL_SHARDS", "3")
    monkeypatch.setenv("TEST_SHARD_INDEX", "1")
    monkeypatch.setenv("TEST_SHARD_STATUS_FILE", str(status))
    monkeypatch.setenv("XML_OUTPUT_FILE", str(xml))
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=len(expected), deselected=42 - len(expected))
    result.stdout.fnmatch_lines(["prefect-testkit: shard 1/3 (from Bazel)"])
    assert status.exists()
    cases = ElementTree.parse(xml).getroot().iter("testcase")
    assert len(list(cases)) == len(expected)


def test_a_suite_without_prefect_tests_starts_no_server(pytester: pytest.Pytester) -> None:
    pyproject(pytester)
    pytester.makepyfile(PLAIN_SUITE)
    started = time.monotonic()
    result = pytester.runpytest()
    result.assert_outcomes(passed=42)
    result.stdout.fnmatch_lines(
        [
            "prefect-testkit: Prefect 3.*; server: started lazily*",
            "prefect-testkit: no Prefect server was started (no test needed one)",
        ]
    )
    assert time.monotonic() - started < 10


def test_no_prefect_harness_skips_what_needs_it(pytester: pytest.Pytester) -> None:
    # Autouse is on, but the flag wins: plain tests run, harness users skip with a reason.
    pyproject(pytester, "prefect_harness_autouse = true")
    pytester.makepyfile(
        """
        import pytest

        def test_plain():
            pass

        def test_needs_harness(prefect_harness):
            raise AssertionError("must not run")

        @pytest.mark.prefect_isolated
        def test_isolated():
            raise AssertionError("must not run")

        def test_client(sync_prefect_client):
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest("--no-prefect-harness", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*server: disabled by --no-prefect-harness*",
            "prefect-testkit: no server (--no-prefect-harness)",
            "*needs the Prefect test harness, which --no-prefect-harness turned off*",
        ]
    )


def test_marker_is_registered_and_takes_no_arguments(pytester: pytest.Pytester) -> None:
    pyproject(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.prefect_isolated("please")
        def test_wrong():
            pass
        """
    )
    result = pytester.runpytest("--no-prefect-harness")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*prefect_isolated takes no arguments*"])
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.prefect_isolated: give the test an empty*"])
