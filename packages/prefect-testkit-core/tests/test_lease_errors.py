"""A harness that cannot get its leases fails with the harness's own errors, never the
allocator's: the data as attributes, the allocator's error chained, nothing left behind."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from prefect_testkit import (
    HarnessConfigError,
    HarnessStartupError,
    LeasePoolExhaustedError,
    LockDirectoryError,
    prefect_test_harness,
)
from prefect_testkit_xdist import (
    AllocatorConfigError,
    LockDirError,
    PoolExhaustedError,
    lease_directory,
    lease_port,
    list_leases,
)


@pytest.fixture
def lock_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock directory of this test's own, so that what is left in it is ours to check."""
    root = tmp_path / "locks"
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(root))
    monkeypatch.setenv("PREFECT_TESTKIT_LEASE_TIMEOUT", "0")
    monkeypatch.setenv("PREFECT_TESTKIT_TEMPLATE_CACHE", "false")
    return root


@pytest.fixture
def no_new_processes() -> Iterator[None]:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def harness_directories(lock_root: Path) -> list[Path]:
    return [entry for entry in (lock_root / "dirs").iterdir() if not entry.name.endswith(".lock")]


@pytest.mark.usefixtures("no_new_processes")
def test_an_exhausted_port_pool_is_a_startup_error_naming_range_and_holders(
    lock_root: Path,
) -> None:
    port = free_port()
    with lease_port(range(port, port + 1)) as held:
        with (
            pytest.raises(LeasePoolExhaustedError) as caught,
            prefect_test_harness(port_range=(port, port)),
        ):
            pytest.fail("the harness started without a port")
        error = caught.value
        assert isinstance(error, HarnessStartupError)
        assert error.port_range == range(port, port + 1)
        assert error.pool == f"ports {port}-{port}"
        assert error.waited == 0
        assert [(h.resource, h.pid) for h in error.holders] == [(f"port {port}", os.getpid())]
        assert f"{port}-{port}" in str(error)
        assert f"pid {os.getpid()}" in str(error)
        assert isinstance(error.__cause__, PoolExhaustedError)
        # Only the test's own lease is live; the harness's directory is gone.
        assert [lease.resource for lease in list_leases()] == [f"port {held.port}"]
        assert harness_directories(lock_root) == []


@pytest.mark.usefixtures("no_new_processes")
def test_an_exhausted_directory_pool_is_a_startup_error_naming_the_holders(
    lock_root: Path,
) -> None:
    held = []
    try:
        # Every directory the harness could lease, held by this process.
        while True:
            try:
                held.append(lease_directory("harness", timeout=0))
            except PoolExhaustedError:
                break
        with pytest.raises(LeasePoolExhaustedError) as caught, prefect_test_harness():
            pytest.fail("the harness started without a directory")
        error = caught.value
        assert error.port_range is None
        assert error.pool in str(error)
        assert {holder.path for holder in error.holders} == {lease.path for lease in held}
        assert isinstance(error.__cause__, PoolExhaustedError)
    finally:
        for lease in held:
            lease.release()
    assert list_leases() == []


@pytest.mark.usefixtures("no_new_processes")
def test_a_lock_dir_that_is_a_file_is_a_config_error_naming_it(lock_root: Path) -> None:
    lock_root.parent.mkdir(exist_ok=True)
    lock_root.write_text("not a directory")
    with (
        pytest.raises(LockDirectoryError, match="not a directory") as caught,
        prefect_test_harness(),
    ):
        pytest.fail("the harness started with a file as its lock directory")
    error = caught.value
    assert isinstance(error, HarnessConfigError)
    assert error.path == lock_root
    assert str(lock_root) in str(error)
    assert isinstance(error.__cause__, LockDirError)
    assert lock_root.read_text() == "not a directory"


@pytest.mark.usefixtures("no_new_processes")
def test_a_world_writable_lock_dir_is_refused_before_anything_is_written(
    lock_root: Path,
) -> None:
    lock_root.mkdir()
    lock_root.chmod(0o777)
    with (
        pytest.raises(LockDirectoryError, match="writable by group or others") as caught,
        prefect_test_harness(),
    ):
        pytest.fail("the harness started in a world-writable lock directory")
    assert caught.value.path == lock_root
    assert isinstance(caught.value.__cause__, LockDirError)
    assert list(lock_root.iterdir()) == []


@pytest.mark.usefixtures("no_new_processes")
def test_a_bad_lease_setting_is_a_config_error_chained_to_the_allocators(
    lock_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_LEASE_TIMEOUT", "soon")
    with (
        pytest.raises(HarnessConfigError, match="PREFECT_TESTKIT_LEASE_TIMEOUT") as caught,
        prefect_test_harness(),
    ):
        pytest.fail("the harness started with a bad lease timeout")
    assert type(caught.value) is HarnessConfigError
    assert isinstance(caught.value.__cause__, AllocatorConfigError)
    assert not lock_root.exists() or harness_directories(lock_root) == []
