"""Startup failures, bad input and a killed parent: clear errors and nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import prefect.settings
import psutil
import pytest
from conftest import STARTUP_TIMEOUT, double_flow, wait_until_gone
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from prefect_testkit import HarnessConfigError, HarnessStartupError, prefect_test_harness


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"server_startup_timeout": 0}, "positive, finite number of seconds, got 0"),
        ({"server_startup_timeout": -5}, "got -5"),
        ({"server_startup_timeout": float("nan")}, "got nan"),
        ({"server_startup_timeout": float("inf")}, "got inf"),
        ({"server_startup_timeout": "30"}, "got '30' (str)"),
        ({"server_startup_timeout": True}, "got True (bool)"),
        ({"port_range": "9000-8000"}, "9000-8000"),
        ({"port_range": range(5000, 5000)}, "port_range"),
        ({"port_range": (0, 10)}, "port_range"),
        ({"port_range": (65535, 70000)}, "70000"),
        ({"port_range": "eight-thousand"}, "eight-thousand"),
        ({"keep_files": "yes"}, "keep_files must be True or False, got 'yes'"),
        ({"initial_database": "/no/such/file.db"}, "'/no/such/file.db' is not an existing file"),
        ({"initial_database": 42}, "initial_database must be a path"),
    ],
)
def test_bad_input_is_rejected_before_anything_starts(
    kwargs: dict[str, object], expected: str
) -> None:
    children_before = psutil.Process().children(recursive=True)
    with pytest.raises(HarnessConfigError) as caught, prefect_test_harness(**kwargs):  # type: ignore[arg-type]
        pytest.fail("the harness accepted bad input")
    assert expected in str(caught.value)
    assert psutil.Process().children(recursive=True) == children_before


def test_a_missing_sqlite3_module_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlite3", None)
    with pytest.raises(HarnessConfigError, match="libsqlite3-dev"), prefect_test_harness():
        pytest.fail("the harness started without sqlite3")


def test_none_timeout_uses_prefects_setting_and_a_timeout_is_explained() -> None:
    before = prefect.settings.PREFECT_API_URL.value()
    with (
        prefect.settings.temporary_settings(
            {prefect.settings.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 1}
        ),
        pytest.raises(HarnessStartupError) as caught,
        prefect_test_harness(None),
    ):
        pytest.fail("a Prefect server started in under a second")
    message = str(caught.value)
    assert "timed out after 1 s" in message
    assert "last lines of the server log" in message
    port = int(message.split("port: ")[1].split()[0])
    assert not any(conn.laddr.port == port for conn in psutil.net_connections("tcp"))
    assert prefect.settings.PREFECT_API_URL.value() == before


class _ImpostorHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor_port() -> Iterator[int]:
    """A foreign HTTP server that answers 200 to /api/health, on a port with a free neighbour."""
    for port in range(18100, 18900, 2):
        try:
            server = HTTPServer(("127.0.0.1", port), _ImpostorHandler)
        except OSError:
            continue
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port + 1)) == 0:
                server.server_close()
                continue
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield port
        server.shutdown()
        server.server_close()
        return
    pytest.fail("no free port pair for the impostor test")


def test_a_foreign_server_on_a_port_is_never_taken_for_ours(impostor_port: int) -> None:
    with prefect_test_harness(
        STARTUP_TIMEOUT, port_range=(impostor_port, impostor_port + 1)
    ) as harness:
        assert harness.port == impostor_port + 1
        assert double_flow(5) == 10


def test_the_server_dies_with_its_parent_even_on_sigkill() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from prefect_testkit import prefect_test_harness
        with prefect_test_harness(120) as harness:
            print(harness.server_pid, harness.directory, flush=True)
            time.sleep(600)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as parent:
        try:
            assert parent.stdout is not None
            server_pid_text, _directory = parent.stdout.readline().split()
            server_pid = int(server_pid_text)
            assert psutil.pid_exists(server_pid)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
            assert wait_until_gone(server_pid, within=5.0), "the server outlived its parent"
        finally:
            parent.kill()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PREFECT_TESTKIT_SERVER_FACTORY", "sometimes", "'sometimes' is not a boolean"),
        ("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "-1", "'-1' must be a number of seconds >= 0"),
        ("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "soon", "'soon' must be a number of seconds"),
        ("PREFECT_TESTKIT_TEMPLATE_CACHE", "maybe", "'maybe' is not a boolean"),
        ("PREFECT_TESTKIT_CACHE_DIR", "relative/cache", "must be an absolute path"),
        ("PREFECT_TESTKIT_SQLITE_IMMEDIATE", "sure", "'sure' is not a boolean"),
        ("PREFECT_TESTKIT_API_AUTH", "2", "'2' is not a boolean"),
    ],
)
def test_bad_environment_values_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    children = psutil.Process().children(recursive=True)
    with pytest.raises(HarnessConfigError, match=expected), prefect_test_harness():
        pytest.fail("the harness accepted a bad environment value")
    assert psutil.Process().children(recursive=True) == children


def causes(exc: BaseException | None) -> Iterator[str]:
    """The messages of an exception and of the exceptions it was raised from."""
    while exc is not None:
        yield str(exc)
        exc = exc.__cause__


@pytest.mark.parametrize("factory", ["true", "false"])
def test_a_server_killed_mid_test_fails_the_next_calls_fast_and_clearly(
    factory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_SERVER_FACTORY", factory)
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert double_flow(1) == 2
        os.kill(harness.server_pid, signal.SIGKILL)
        assert wait_until_gone(harness.server_pid)
        for _ in range(2):  # the failing call, and every one after it
            started = time.monotonic()
            with pytest.raises(Exception, match=r"test server died|Failed to reach API") as caught:
                double_flow(2)
            assert time.monotonic() - started < 10, "the client backed off instead of failing"
            # Prefect 3.0's client raises "Failed to reach API" from ours: the traceback
            # shows both, ours as the cause.
            reason = next(m for m in causes(caught.value) if "test server died" in m)
            assert "exit code -9" in reason
        assert harness.server_returncode == -9
        assert harness.server_death is not None
        assert "last lines of its log" in harness.server_death.lower()
    assert not harness.directory.exists()

    # Prefect's workers are per process: none may stay bound to the dead server.
    with prefect_test_harness(STARTUP_TIMEOUT) as after:
        state = double_flow(3, return_state=True)
        after.flush()
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        assert [run.state_name for run in task_runs] == ["Completed"]


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import resource, signal
    from prefect_testkit import HarnessStartupError, prefect_test_harness

    # A full disk without privileges: past this size every write fails with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    try:
        with prefect_test_harness(120):
            print("STARTED")
    except HarnessStartupError as exc:
        print(exc)
    """
)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing() -> None:
    """Simulated with RLIMIT_FSIZE, which needs no privileges (unlike a small tmpfs)."""
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert "STARTED" not in result.stdout, result.stdout
    assert "could not prepare its directory" in result.stdout, result.stdout + result.stderr
    assert "File too large" in result.stdout
    directory = result.stdout.split("prepare its directory ")[1].split(":")[0]
    assert not Path(directory).exists()


READ_ONLY_SCRIPT = textwrap.dedent(
    """
    from prefect_testkit import prefect_test_harness

    try:
        with prefect_test_harness(120):
            print("STARTED")
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
    """
)


@pytest.mark.parametrize("lock_dir", ["{mount}", "{mount}/locks"])
def test_a_read_only_lock_directory_is_a_clear_error(tmp_path: Path, lock_dir: str) -> None:
    """A read-only tmpfs, mounted in a user and mount namespace of its own (`unshare -rm`).

    That needs no privileges where the kernel allows unprivileged user namespaces, and
    works as root too, where mode bits would not stop a write.
    """
    mount = tmp_path / "read-only"
    mount.mkdir()
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux's unshare is not installed")
    probe = subprocess.run(
        [unshare, "-rm", "mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}")
    directory = lock_dir.format(mount=mount)
    command = (
        f"mount -t tmpfs -o ro,size=1m,mode=0700 tmpfs {mount} && "
        f'PREFECT_TESTKIT_LOCK_DIR={directory} exec "$0" -c "$1"'
    )
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c", command, sys.executable, READ_ONLY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "STARTED" not in result.stdout
    assert "LockDirectoryError" in result.stdout, result.stdout + result.stderr
    assert "Read-only file system" in result.stdout
    assert "PREFECT_TESTKIT_LOCK_DIR" in result.stdout
    assert result.returncode == 0, result.stderr
