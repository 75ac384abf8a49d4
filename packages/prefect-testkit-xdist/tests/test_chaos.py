"""A holder killed with SIGKILL mid-lease: nothing it held stays taken."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import run_cli, start_holder, stop_holder

from prefect_testkit_xdist import lease_directory, lease_port, list_leases


def test_sigkilled_holder_frees_everything_at_once(free_port_range: range) -> None:
    only = f"{free_port_range[0]}-{free_port_range[0]}"
    holder, reported = start_holder("port", only, "directory", "harness")
    port = int(reported["port"])
    directory = Path(reported["directory"])
    try:
        listed = run_cli("leases")
        assert listed.returncode == 0
        assert f"port {port}" in listed.stdout
        assert f"directory {directory.name}" in listed.stdout
        assert str(holder.pid) in listed.stdout
        assert "holder.py" in listed.stdout

        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        killed_at = time.monotonic()
        # timeout=0: a single attempt, so this only passes if the port is free right away.
        with lease_port(range(port, port + 1), timeout=0) as again:
            assert again.port == port
        assert time.monotonic() - killed_at < 1

        listed = run_cli("leases")
        assert listed.returncode == 0
        assert str(holder.pid) not in listed.stdout
        assert "no live leases" in listed.stdout
        as_json = run_cli("leases", "--json")
        assert json.loads(as_json.stdout) == []

        assert (directory / "prefect.db").exists()
        cleaned = run_cli("clean")
        assert cleaned.returncode == 0
        assert f"removed {directory}\n" in cleaned.stdout
        assert not directory.exists()
        assert not directory.with_suffix(".json").exists()
        assert "nothing to remove" in run_cli("clean").stdout

        with lease_directory(timeout=0) as reused:
            assert reused.path == directory
    finally:
        stop_holder(holder)


def test_sigkilled_holders_directory_is_granted_again_wiped() -> None:
    holder, reported = start_holder("directory", "harness")
    directory = Path(reported["directory"])
    os.kill(holder.pid, signal.SIGKILL)
    stop_holder(holder)
    with lease_directory(timeout=0) as again:
        assert again.path == directory
        assert list(directory.iterdir()) == []
        (record,) = list_leases()
        assert record.pid == os.getpid()


def test_clean_leaves_live_leases_alone() -> None:
    holder, reported = start_holder("directory", "harness")
    try:
        assert "nothing to remove" in run_cli("clean").stdout
        assert Path(reported["directory"], "prefect.db").exists()
        (record,) = list_leases()
        assert record.pid == holder.pid
    finally:
        stop_holder(holder)
