"""The server factory: forked servers, its death, its idle exit, and the fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import STARTUP_TIMEOUT, double_flow, wait_until_gone

from prefect_testkit import prefect_test_harness


def factory_of(server_pid: int) -> psutil.Process:
    factory = psutil.Process(server_pid).parent()
    assert factory is not None
    assert "prefect_testkit._factory" in " ".join(factory.cmdline())
    return factory


def test_a_killed_factory_harms_no_server_and_an_idle_one_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_dir = tmp_path / "locks"
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(lock_dir))
    monkeypatch.setenv("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "1")

    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert harness.server_forked
        factory = factory_of(harness.server_pid)
        factory.send_signal(signal.SIGKILL)
        assert wait_until_gone(factory.pid)
        # The server is the factory's child no longer, but it keeps serving us.
        assert double_flow(7) == 14
        assert harness.server_returncode is None
    assert wait_until_gone(harness.server_pid, within=0.5)

    with prefect_test_harness(STARTUP_TIMEOUT) as again:
        assert again.server_forked  # a new factory took over
        factory = factory_of(again.server_pid)
        assert double_flow(8) == 16
    assert wait_until_gone(factory.pid, within=10), "an idle factory outlived its timeout"


def test_without_the_factory_the_server_is_spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_SERVER_FACTORY", "false")
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert not harness.server_forked
        assert psutil.Process(harness.server_pid).ppid() == os.getpid()
        assert double_flow(9) == 18


def test_a_factory_outlives_the_directory_it_was_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "5")
    launched_from = tmp_path / "deleted-later"
    launched_from.mkdir()
    first = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect_testkit import prefect_test_harness as h\n"
            "with h(120) as harness: print(harness.server_forked)",
        ],
        cwd=launched_from,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.stdout.strip() == "True", first.stderr
    launched_from.rmdir()

    with prefect_test_harness(STARTUP_TIMEOUT) as harness:  # forked by that factory
        assert harness.server_forked
        assert double_flow(3) == 6
