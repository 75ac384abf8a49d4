"""Errors carry what their message names as attributes, and survive pickling with them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from prefect_testkit_xdist import LockDirError, PoolExhaustedError, lease_directory, lease_port


def test_an_exhausted_port_pool_names_its_range_holders_and_wait(free_port_range: range) -> None:
    ports = free_port_range[:2]
    with lease_port(ports), lease_port(ports), pytest.raises(PoolExhaustedError) as caught:
        lease_port(ports, timeout=0)
    error = caught.value
    assert error.port_range == ports
    assert error.pool == f"ports {ports[0]}-{ports[-1]}"
    assert error.waited == 0
    assert sorted(holder.resource for holder in error.holders) == [f"port {port}" for port in ports]
    assert {holder.pid for holder in error.holders} == {os.getpid()}
    assert f"{ports[0]}-{ports[-1]}" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.pool, copy.port_range, copy.holders, copy.waited, str(copy)) == (
        error.pool,
        error.port_range,
        error.holders,
        error.waited,
        str(error),
    )


def test_an_exhausted_directory_pool_names_its_holders() -> None:
    from prefect_testkit_xdist._directories import MAX_DIRECTORIES_PER_NAME

    held = [lease_directory("full") for _ in range(MAX_DIRECTORIES_PER_NAME)]
    try:
        with pytest.raises(PoolExhaustedError) as caught:
            lease_directory("full", timeout=0)
    finally:
        for lease in held:
            lease.release()
    error = caught.value
    assert error.port_range is None
    assert error.pool.endswith("_full_N")
    assert error.pool in str(error)
    assert len(error.holders) == MAX_DIRECTORIES_PER_NAME
    assert {holder.path for holder in error.holders} == {lease.path for lease in held}


def test_a_refused_lock_dir_names_the_path(lock_root: Path) -> None:
    lock_root.write_text("")
    with pytest.raises(LockDirError, match="not a directory") as caught:
        lease_port()
    assert caught.value.path == lock_root
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, str(copy)) == (lock_root, str(caught.value))


def test_an_uncreatable_lock_dir_names_the_parent_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("")
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(blocker / "locks"))
    with pytest.raises(LockDirError) as caught:
        lease_directory()
    assert caught.value.path == blocker
