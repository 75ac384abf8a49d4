from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent / "helpers"

# Every variable the allocator reads; tests start from none of them so that running this suite
# under xdist, Bazel or nox does not change what it checks.
_ALLOCATOR_ENV = (
    "PREFECT_TESTKIT_LOCK_DIR",
    "PREFECT_TESTKIT_PORT_RANGE",
    "PREFECT_TESTKIT_LEASE_TIMEOUT",
    "PREFECT_TESTKIT_ALLOW_NETWORK_FS",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "TEST_SHARD_INDEX",
    "TEST_TOTAL_SHARDS",
    "TEST_TMPDIR",
    "NOX_CURRENT_SESSION",
)


@pytest.fixture(autouse=True)
def lock_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lock directory per test, so tests never see each other's (or real) leases."""
    for name in _ALLOCATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "locks"
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(root))
    return root


def free_ports(count: int) -> range:
    """`count` consecutive ports that nothing was listening on a moment ago.

    Tests use these instead of fixed numbers, which could clash with whatever else runs on the
    machine (other test suites lease from 8000-8999 through the real lock directory).
    """
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        ports = range(base, base + count)
        if ports[-1] <= 65535 and all(_bindable(port) for port in ports):
            return ports
    raise RuntimeError(f"could not find {count} consecutive free ports")


@pytest.fixture
def free_port_range() -> range:
    return free_ports(4)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_testkit_xdist._cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        check=False,
    )


def start_holder(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start helpers/holder.py, wait until it holds its leases, and return what it reported."""
    # `python holder.py` in its directory: the command line that leases and errors show, cut
    # to a fixed length, then names the script wherever the tests live (under Bazel the
    # absolute path of the runfiles alone is longer than that length).
    process = subprocess.Popen(
        [sys.executable, "holder.py", *args],
        cwd=HELPERS,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        process.wait()
        raise RuntimeError("holder exited before taking its leases")
    return process, dict(item.split("=", 1) for item in line.split())


def stop_holder(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()
