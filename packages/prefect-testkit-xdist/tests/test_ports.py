from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_holder, stop_holder

from prefect_testkit_xdist import AllocatorError, PoolExhaustedError, lease_port, list_leases


def test_port_lease_hands_over_a_listening_socket() -> None:
    with lease_port() as lease:
        assert lease.port in range(8000, 9000)
        assert lease.host == "127.0.0.1"
        assert lease.address == ("127.0.0.1", lease.port)
        assert lease.socket.getsockname() == ("127.0.0.1", lease.port)
        assert not lease.socket.get_inheritable()
        with socket.create_connection(lease.address, timeout=5):
            accepted, _ = lease.socket.accept()
            accepted.close()
    assert lease.released
    assert lease.socket.fileno() == -1


def test_release_is_idempotent_and_frees_the_port(free_port_range: range) -> None:
    only = range(free_port_range[0], free_port_range[0] + 1)
    lease = lease_port(only, timeout=0)
    lease.release()
    lease.release()
    with lease_port(only, timeout=0) as again:
        assert again.port == lease.port


def test_two_leases_in_one_process_never_share_a_port(free_port_range: range) -> None:
    leases = [lease_port(free_port_range, timeout=0) for _ in free_port_range]
    try:
        assert sorted(lease.port for lease in leases) == list(free_port_range)
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError, match=f"pid {os.getpid()}"):
            lease_port(free_port_range, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 2
    finally:
        for lease in leases:
            lease.release()


def test_ports_bound_outside_the_testkit_are_skipped(free_port_range: range) -> None:
    squatters = []
    for port in free_port_range[:-1]:
        squatter = socket.socket()
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        squatters.append(squatter)
    try:
        with lease_port(free_port_range, timeout=0) as lease:
            assert lease.port == free_port_range[-1]
            with pytest.raises(PoolExhaustedError, match="in use by others") as caught:
                lease_port(free_port_range, timeout=0)
            assert str(free_port_range[0]) in str(caught.value)
    finally:
        for squatter in squatters:
            squatter.close()


def test_exhausted_pool_names_the_holders_within_the_configured_time(
    free_port_range: range, monkeypatch: pytest.MonkeyPatch
) -> None:
    only = f"{free_port_range[0]}-{free_port_range[0]}"
    holder, reported = start_holder("port", only)
    try:
        assert reported["port"] == str(free_port_range[0])
        monkeypatch.setenv("PREFECT_TESTKIT_PORT_RANGE", only)
        monkeypatch.setenv("PREFECT_TESTKIT_LEASE_TIMEOUT", "0.5")
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError) as caught:
            lease_port()
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < 2.5
        message = str(caught.value)
        assert f"pid {holder.pid}" in message
        assert "holder.py" in message  # the holder's command line
        assert "age " in message
        assert "after waiting 0.5s" in message
    finally:
        stop_holder(holder)


def test_waiter_gets_the_port_when_the_holder_dies(free_port_range: range) -> None:
    only = range(free_port_range[0], free_port_range[0] + 1)
    holder, _ = start_holder("port", f"{only[0]}-{only[0]}")
    try:
        time.sleep(0.2)
        holder.kill()
        with lease_port(only, timeout=10) as lease:
            assert lease.port == only[0]
    finally:
        stop_holder(holder)


def test_socket_fd_can_be_passed_to_a_child_server() -> None:
    server_code = (
        "import socket, sys\n"
        "s = socket.socket(fileno=int(sys.argv[1]))\n"
        "c, _ = s.accept(); c.sendall(b'hello from child'); c.close()\n"
    )
    with lease_port() as lease:
        child = subprocess.Popen(
            [sys.executable, "-c", server_code, str(lease.socket.fileno())],
            pass_fds=[lease.socket.fileno()],
        )
        try:
            with socket.create_connection(lease.address, timeout=10) as client:
                assert client.recv(100) == b"hello from child"
        finally:
            assert child.wait(timeout=30) == 0
        # The lease still covers the port while the (possibly still running) server has it.
        assert any(record.resource == f"port {lease.port}" for record in list_leases())


def test_lock_file_is_never_deleted(lock_root: Path) -> None:
    with lease_port() as lease:
        lock_file = lock_root / "ports" / f"{lease.port}.lock"
        inode = lock_file.stat().st_ino
    assert lock_file.stat().st_ino == inode
    assert not lock_file.with_suffix(".json").exists()


def test_a_taken_socket_is_the_callers_and_the_port_stays_leased(free_port_range: range) -> None:
    lease = lease_port(free_port_range, timeout=0)
    sock = lease.take_socket()
    assert sock.getsockname() == ("127.0.0.1", lease.port)
    with pytest.raises(AllocatorError, match="already taken"):
        lease.take_socket()
    with pytest.raises(AllocatorError, match="taken"):
        _ = lease.socket
    sock.close()
    assert [record.resource for record in list_leases()] == [f"port {lease.port}"]
    lease.release()
    assert list_leases() == []


def test_release_leaves_a_taken_socket_open(free_port_range: range) -> None:
    with lease_port(free_port_range, timeout=0) as lease:
        sock = lease.take_socket()
    try:
        assert sock.fileno() != -1
        assert sock.getsockname() == ("127.0.0.1", lease.port)
    finally:
        sock.close()
    with pytest.raises(AllocatorError, match="already taken"):
        lease.take_socket()


def test_a_released_lease_has_no_socket_to_take(free_port_range: range) -> None:
    lease = lease_port(free_port_range, timeout=0)
    lease.release()
    with pytest.raises(AllocatorError, match="released"):
        lease.take_socket()
