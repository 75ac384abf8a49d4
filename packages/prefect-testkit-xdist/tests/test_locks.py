"""The one file lock: exclusive and shared, bounded waits, release by close, hand-over."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from prefect_testkit_xdist import (
    LockDirError,
    LockTimeoutError,
    is_file_locked,
    lock_file,
    try_lock_file,
)

# Holds whatever descriptors the parent handed over (pass_fds) until its stdin closes.
_HOLD_INHERITED = "import sys\nprint('holding', flush=True)\nsys.stdin.read()\n"


def test_exclusive_excludes_every_other_holder_in_this_process(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    held = try_lock_file(path)
    assert held is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert try_lock_file(path) is None
    assert try_lock_file(path, shared=True) is None
    assert is_file_locked(path)
    held.release()
    held.release()  # at most once
    assert held.released
    assert not is_file_locked(path)
    with pytest.raises(ValueError, match="released"):
        _ = held.fd


def test_shared_locks_share_and_keep_exclusive_out(tmp_path: Path) -> None:
    path = tmp_path / "users.lock"
    with lock_file(path, shared=True) as first, lock_file(path, shared=True, timeout=0) as second:
        assert first.shared
        assert second.shared
        assert try_lock_file(path) is None
    assert not is_file_locked(path)


def test_a_bounded_wait_gives_up_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "busy.lock"
    with lock_file(path):
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as caught:
            lock_file(path, timeout=0.2)
        assert 0.2 <= time.monotonic() - started < 5
    assert (caught.value.path, caught.value.timeout) == (path, 0.2)
    assert str(path) in str(caught.value)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, copy.timeout, str(copy)) == (path, 0.2, str(caught.value))


def test_a_waiter_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "wait.lock"
    held = lock_file(path)
    threading.Timer(0.2, held.release).start()
    with lock_file(path, timeout=10) as mine:
        assert held.released
        assert not mine.released


def test_a_lock_file_removed_while_waiting_is_not_held(tmp_path: Path) -> None:
    # As `clean` does: delete the lock file while holding it, then release. A waiter must
    # then hold the file at the path, not the deleted one nobody else can see.
    path = tmp_path / "gone.lock"
    held = lock_file(path)

    def remove_then_release() -> None:
        path.unlink()
        held.release()

    threading.Timer(0.2, remove_then_release).start()
    with lock_file(path, timeout=10) as mine:
        assert os.path.samestat(os.fstat(mine.fd), path.stat())
        assert try_lock_file(path) is None


def test_a_descriptor_handed_to_a_child_keeps_the_lock_after_our_release(tmp_path: Path) -> None:
    path = tmp_path / "factory.lock"
    with lock_file(path) as held:
        child = subprocess.Popen(
            [sys.executable, "-c", _HOLD_INHERITED],
            pass_fds=(held.fd,),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        assert child.stdout.readline() == "holding\n"
        assert is_file_locked(path)  # our copy is closed; the child's holds it
    finally:
        child.stdin.close()
        child.wait()
        child.stdout.close()
    assert not is_file_locked(path)


def test_a_forked_child_releasing_its_copy_leaves_ours_held(tmp_path: Path) -> None:
    path = tmp_path / "fork.lock"
    with lock_file(path) as held:
        pid = os.fork()
        if pid == 0:
            held.release()
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert is_file_locked(path)
    assert not is_file_locked(path)


def test_an_unusable_lock_file_is_a_lock_dir_error_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    path = tmp_path / "link.lock"
    path.symlink_to(target)  # never followed
    with pytest.raises(LockDirError) as caught:
        try_lock_file(path)
    assert caught.value.path == path
    assert not target.exists()
