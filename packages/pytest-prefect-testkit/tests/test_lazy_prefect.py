"""Loading the plugin imports no Prefect: a suite configures Prefect before it loads."""

from __future__ import annotations

import re

import pytest
from conftest import FLOWS, STARTUP, pyproject

# Prefect's console format: "12:34:56.789 | DEBUG   | logger - message".
PREFECT_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d+ \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def test_plugin_load_and_collection_import_no_prefect(pytester: pytest.Pytester) -> None:
    pyproject(pytester)
    pytester.makepyfile(
        """
        import sys

        def loaded():
            return sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))

        def test_no_prefect_after_load_and_collection():
            assert loaded() == []
        """
    )
    # A subprocess: the process running this test has Prefect imported already.
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    # The header still names Prefect's version, read from its metadata.
    result.stdout.fnmatch_lines(["prefect-testkit: Prefect 3.*; server: *"])


def test_settings_from_the_suites_conftest_are_honoured_and_logs_stay_captured(
    pytester: pytest.Pytester,
) -> None:
    pyproject(pytester, "prefect_harness_autouse = true")
    # What pytest-env or an ini `env` section does: set PREFECT_* before tests import Prefect.
    pytester.makeconftest(
        """
        import os

        os.environ["PREFECT_LOGGING_LEVEL"] = "DEBUG"
        os.environ["PREFECT_TEST_MODE"] = "1"
        """
    )
    pytester.makepyfile(
        flows=FLOWS,
        test_settings="""
        import logging

        import prefect.settings
        from flows import make

        def test_the_suites_settings_reach_prefect():
            assert make(2) == 4
            assert prefect.settings.PREFECT_TEST_MODE.value() is True
            assert prefect.settings.PREFECT_LOGGING_LEVEL.value() == "DEBUG"
            assert logging.getLogger("prefect").getEffectiveLevel() == logging.DEBUG

        def test_and_again():
            assert make(3) == 6
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(STARTUP)
    result.assert_outcomes(passed=2)
    printed = [line for line in result.outlines + result.errlines if PREFECT_LOG_LINE.search(line)]
    assert printed == [], "\n".join(printed)
