"""The server factory: forked servers, its death, its idle exit, its identity, and the
fallback to spawning."""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import STARTUP_TIMEOUT, double_flow, wait_until_gone

from prefect_testkit import prefect_test_harness
from prefect_testkit._launch.spawn import ANSWER_SECONDS, start_factory
from prefect_testkit._launch.wire import factory_paths

LOCK_DIR_ENV = "PREFECT_TESTKIT_LOCK_DIR"
IDLE_ENV = "PREFECT_TESTKIT_FACTORY_IDLE_SECONDS"
# Long enough for a normal run to find the factory a subprocess just used, short enough
# that the check for leftover factories at the end of each test is quick.
FACTORY_IDLE_SECONDS = 5
CLIENT = Path(__file__).with_name("factory_client.py")


def factory_of(server_pid: int) -> psutil.Process:
    factory = psutil.Process(server_pid).parent()
    assert factory is not None
    assert "prefect_testkit._launch.factory" in " ".join(factory.cmdline())
    return factory


def factories_using(lock_dir: Path) -> list[psutil.Process]:
    """The live factories (and servers they forked) whose lock directory is ``lock_dir``."""
    found = []
    for process in psutil.process_iter():
        try:
            if "prefect_testkit._launch.factory" in " ".join(
                process.cmdline()
            ) and process.environ().get(LOCK_DIR_ENV) == str(lock_dir):
                found.append(process)
        except psutil.Error:
            continue  # gone meanwhile, or another user's
    return found


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lock directory of the test's own (subprocesses inherit it), so that its factories
    are its own; none may outlive the test."""
    path = tmp_path / "locks"
    monkeypatch.setenv(LOCK_DIR_ENV, str(path))
    monkeypatch.setenv(IDLE_ENV, str(FACTORY_IDLE_SECONDS))
    yield path
    for process in factories_using(path):
        assert wait_until_gone(process.pid, within=FACTORY_IDLE_SECONDS + 10), (
            f"factory process {process.pid} outlived its idle timeout"
        )


def normal_run() -> psutil.Process:
    """A harness started the usual way, in this process: it must be forked and run a flow.

    Returns the factory that forked it.
    """
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert harness.server_forked
        assert double_flow(5) == 10
        return factory_of(harness.server_pid)


def timed_run(timeout: float) -> tuple[bool, float]:
    """A harness in this process that must run a flow: was it forked, and its startup seconds."""
    began = time.monotonic()
    with prefect_test_harness(timeout) as harness:
        took = time.monotonic() - began
        assert double_flow(6) == 12
        return harness.server_forked, took


def start_client(python: str, cwd: Path) -> subprocess.Popen[str]:
    """`factory_client.py` run by ``python``, spelled as given, from ``cwd``."""
    return subprocess.Popen(
        [python, str(CLIENT)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def client_report(client: subprocess.Popen[str]) -> dict[str, object]:
    try:
        out, err = client.communicate(timeout=300)
    finally:
        client.kill()
    assert client.returncode == 0, err[-4000:]
    report = json.loads(out.splitlines()[-1])
    assert isinstance(report, dict)
    return report


def sibling_virtualenv(path: Path) -> str:
    """A second real virtualenv that sees this one's packages: same code, its own sys.prefix.

    Without pip it takes a fraction of a second. The .pth lines call site.addsitedir,
    rather than naming the directories, so that the .pth files of our editable installs
    are read too. Returns its interpreter.
    """
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(path)}))
    lines = [f"import site; site.addsitedir({entry!r})" for entry in site.getsitepackages()]
    (site_packages / "parent-venv.pth").write_text("\n".join(lines) + "\n")
    return str(path / "bin" / "python")


def test_a_killed_factory_harms_no_server_and_an_idle_one_exits(
    lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_ENV, "1")

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
    lock_dir: Path, tmp_path: Path
) -> None:
    launched_from = tmp_path / "deleted-later"
    launched_from.mkdir()
    first = client_report(start_client(sys.executable, launched_from))
    assert first["forked"]
    launched_from.rmdir()

    assert normal_run().pid == first["factory"]


def test_an_interpreter_given_by_a_relative_path_shares_the_factory(
    lock_dir: Path, tmp_path: Path
) -> None:
    # As in `cd tests && ../venv/bin/python -m pytest`: the venv's own bin/python, relative.
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    child = client_report(start_client(os.path.relpath(sys.executable, cwd), cwd))
    assert child["forked"]

    assert normal_run().pid == child["factory"]


def test_a_symlinked_virtualenv_shares_the_factory(lock_dir: Path, tmp_path: Path) -> None:
    link = tmp_path / "venv"
    link.symlink_to(os.path.realpath(sys.prefix), target_is_directory=True)
    python = link / os.path.relpath(sys.executable, sys.prefix)
    child = client_report(start_client(str(python), tmp_path))
    assert child["prefix"] == str(link)  # Python saw the virtualenv through the link
    assert child["forked"]

    assert normal_run().pid == child["factory"]


def test_two_virtualenvs_get_a_factory_each(lock_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "v2"
    clients = [
        start_client(sys.executable, tmp_path),
        start_client(sibling_virtualenv(other), tmp_path),
    ]
    try:
        ours, theirs = (client_report(client) for client in clients)
    finally:
        for client in clients:
            client.kill()
    assert theirs["prefix"] == str(other)
    assert ours["forked"]
    assert theirs["forked"]
    assert ours["factory"] != theirs["factory"]

    assert normal_run().pid != theirs["factory"]


def test_a_stopped_factory_hands_over_to_spawning(
    lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeout = 60
    stopped = normal_run()
    stopped.suspend()
    try:
        with monkeypatch.context() as spawn_only:
            spawn_only.setenv("PREFECT_TESTKIT_SERVER_FACTORY", "false")
            _, spawn_seconds = timed_run(timeout)
        forked, seconds = timed_run(timeout)
        assert not forked
        # It knocked, waited the bound for an answer, then spawned: the bound plus a spawn
        # (doubled: two spawns on a shared machine differ), far from the timeout.
        assert ANSWER_SECONDS <= seconds < ANSWER_SECONDS + 2 * spawn_seconds, (
            f"started in {seconds:.1f} s; a spawn alone took {spawn_seconds:.1f} s"
        )
    finally:
        stopped.kill()
        stopped.resume()
    assert wait_until_gone(stopped.pid)

    normal_run()  # a new factory replaces the dead one's socket


def test_a_factory_removes_no_socket_but_its_own(
    lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factories = lock_dir / "factory"
    # Factories here live until stopped, so that no idle exit hides a wrong one's work.
    monkeypatch.setenv(IDLE_ENV, "600")
    first = normal_run()

    # A cleaner wipes the directory while `first` runs, so the next harness starts a
    # successor on the same path; `first` must leave the successor's socket alone on exit.
    for leftover in factories.iterdir():
        leftover.unlink()
    successor = normal_run()
    assert successor.pid != first.pid
    first.terminate()
    assert wait_until_gone(first.pid)
    assert normal_run().pid == successor.pid

    # Only the lock is wiped: a factory started for the new lock finds the successor
    # answering on the socket and leaves it, and itself, alone.
    for lock in factories.glob("*.lock"):
        lock.unlink()
    start_factory(factory_paths())
    (latecomer,) = [
        process
        for process in factories_using(lock_dir)
        if successor.pid not in (process.pid, process.ppid())
    ]
    assert wait_until_gone(latecomer.pid, within=STARTUP_TIMEOUT)
    assert normal_run().pid == successor.pid
    successor.terminate()
