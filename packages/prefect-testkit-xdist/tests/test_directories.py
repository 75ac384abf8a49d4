from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from conftest import start_holder, stop_holder

from prefect_testkit_xdist import clean, lease_directory, list_leases


def test_directory_lease_is_empty_private_and_named_after_the_worker(
    monkeypatch: pytest.MonkeyPatch, lock_root: Path
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "feedfacecafe0000feedfacecafe0000")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    with lease_directory() as lease:
        assert lease.path == lock_root / "dirs" / "feedfacecafe_gw1_harness_0"
        assert lease.path.is_dir()
        assert list(lease.path.iterdir()) == []
        assert stat.S_IMODE(lease.path.stat().st_mode) == 0o700
    assert not lease.path.exists()


def test_nested_leases_in_one_process_get_distinct_directories() -> None:
    outer = lease_directory()
    inner = lease_directory()
    other = lease_directory("db")
    try:
        assert outer.path.name == "local_main_harness_0"
        assert inner.path.name == "local_main_harness_1"
        assert other.path.name == "local_main_db_0"
    finally:
        for lease in (other, inner, outer):
            lease.release()


def test_threads_in_one_process_never_share_a_directory() -> None:
    paths: list[Path] = []
    barrier = threading.Barrier(8)
    leases = []
    mutex = threading.Lock()

    def take() -> None:
        barrier.wait()
        lease = lease_directory(timeout=5)
        with mutex:
            leases.append(lease)
            paths.append(lease.path)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(set(paths)) == 8
    finally:
        for lease in leases:
            lease.release()


def test_release_is_idempotent_and_can_keep_the_files() -> None:
    lease = lease_directory()
    (lease.path / "prefect.db").write_text("rows")
    lease.release(remove=False)
    lease.release()
    assert (lease.path / "prefect.db").read_text() == "rows"
    assert list_leases() == []


def test_a_kept_directory_is_not_reused_until_clean_removes_it() -> None:
    first = lease_directory()
    (first.path / "prefect.db").write_text("kept for inspection")
    first.release(remove=False)
    with lease_directory() as second:
        assert second.path != first.path
    assert (first.path / "prefect.db").read_text() == "kept for inspection"

    assert first.path in clean()
    assert not first.path.exists()
    with lease_directory() as third:
        assert third.path == first.path
        assert list(third.path.iterdir()) == []


def test_directory_held_by_another_process_is_not_granted() -> None:
    holder, reported = start_holder("directory", "harness")
    try:
        held = Path(reported["directory"])
        assert held.name == "local_main_harness_0"
        with lease_directory() as mine:
            assert mine.path.name == "local_main_harness_1"
            assert (held / "prefect.db").exists()
        (record,) = list_leases()
        assert record.pid == holder.pid
        assert record.path == held
        assert record.kind == "directory"
    finally:
        stop_holder(holder)


def test_failed_preparation_leaves_no_lock_held(lock_root: Path) -> None:
    dirs = lock_root / "dirs"
    dirs.mkdir(parents=True, mode=0o700)
    # Permission bits do not stop root, so make the grant fail for real: a directory sits where
    # the owner record must be written, and os.replace() onto a directory fails for everyone.
    (dirs / "local_main_harness_0.json").mkdir()
    with pytest.raises(OSError, match=r"local_main_harness_0\.json"):
        lease_directory()
    assert list_leases() == []
    assert not (dirs / "local_main_harness_0").exists()
    os.rmdir(dirs / "local_main_harness_0.json")
    with lease_directory() as lease:
        assert lease.path.name == "local_main_harness_0"


def test_release_in_a_forked_child_does_not_end_the_parents_lease() -> None:
    with lease_directory() as lease:
        (lease.path / "prefect.db").write_text("rows")
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            lease.release()
            os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (lease.path / "prefect.db").read_text() == "rows"
        (record,) = list_leases()
        assert record.pid == os.getpid()
    assert list_leases() == []
