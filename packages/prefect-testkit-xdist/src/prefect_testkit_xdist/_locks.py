"""The testkit's one file lock: flock() on a private file, held by an open descriptor.

Every lock of the testkit (leases, the server factory's life, the local PostgreSQL
cluster's users and starters, the template caches) is taken here, so that all of them
share one acquire loop and one set of guarantees:

- The kernel holds the lock for the open file description, so it is dropped the moment
  its holder dies, however it dies; nothing expires by time.
- Releasing is closing the descriptor, never ``flock(LOCK_UN)``: an unlock would end the
  lock for every copy of the descriptor, so a forked child that releases its inherited
  copy would end its parent's lock, and a launcher could not hand a held lock to a child
  (``pass_fds``) and close its own copy.
- A lock file removed while we waited for it (``prefect-testkit clean`` deletes a dead
  directory's lock file while holding it) is not a lock on the name any more: the loop
  locks the file now at the path instead, so one name is never locked twice.
- The file is created 0600 and never through a symlink (``open_private``).
"""

from __future__ import annotations

import abc
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from ._config import LOCK_DIR_ENV
from ._errors import LockDirError, LockTimeoutError
from ._files import open_private

# As filelock's default: short enough that a waiter notices a release at once, long enough
# that a minute's wait costs nothing measurable.
POLL_SECONDS = 0.05

R = TypeVar("R", bound="Releasable")


class Releasable(abc.ABC):
    """Something held until `release()`, which leaving a ``with`` block calls."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give it up. Safe to call repeatedly."""

    def __enter__(self: R) -> R:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class HeldFileLock(Releasable):
    """A file lock this process holds, until `release()` closes its descriptor (at most once).

    Attributes:
        path: the lock file.
        shared: True for a shared lock (many holders), False for an exclusive one.
    """

    def __init__(self, path: Path, fd: int, shared: bool) -> None:
        self.path = path
        self.shared = shared
        self._fd = fd
        self._mutex = threading.Lock()
        self._released = False

    @property
    def fd(self) -> int:
        """The descriptor that holds the lock: pass it to a child for the child to hold it too."""
        if self._released:
            raise ValueError(f"the lock on {self.path} was released")
        return self._fd

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Close our descriptor; the lock ends unless a child still holds a copy of it."""
        with self._mutex:
            if self._released:
                return
            self._released = True
            os.close(self._fd)

    def __repr__(self) -> str:
        mode = "shared" if self.shared else "exclusive"
        state = "released" if self._released else "held"
        return f"<HeldFileLock {mode} {self.path} {state}>"


def try_lock_file(path: Path, *, shared: bool = False) -> HeldFileLock | None:
    """Lock `path` without waiting; None if another holder (this process included) has it.

    Raises:
        LockDirError: the file cannot be opened or locked (a network file system without
            flock(), say); ``.path`` is the lock file.
    """
    return _acquire(path, shared, 0.0)


def lock_file(path: Path, *, shared: bool = False, timeout: float | None = None) -> HeldFileLock:
    """Lock `path`, waiting up to `timeout` seconds (None: as long as it takes).

    Raises:
        LockTimeoutError: the lock stayed taken for `timeout` seconds; ``.path``, ``.timeout``.
        LockDirError: the file cannot be opened or locked; ``.path`` is the lock file.
    """
    held = _acquire(path, shared, timeout)
    if held is None:
        assert timeout is not None  # only a bounded wait gives up
        raise LockTimeoutError(path, timeout)
    return held


def is_file_locked(path: Path) -> bool:
    """Whether anyone holds a lock on `path`, found by probing it (never from a record)."""
    probe = try_lock_file(path)
    if probe is None:
        return True
    probe.release()
    return False


def _acquire(path: Path, shared: bool, timeout: float | None) -> HeldFileLock | None:
    """The acquire loop behind every mode; None when `timeout` passed with the lock taken."""
    deadline = None if timeout is None else time.monotonic() + timeout
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    while True:
        fd = _open(path)
        try:
            # Never a blocking flock(): it could not be bounded by `timeout`, nor interrupted.
            fcntl.flock(fd, operation)
        except BlockingIOError:
            os.close(fd)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(POLL_SECONDS if left is None else min(POLL_SECONDS, left))
            continue
        except OSError as error:
            os.close(fd)
            raise _unusable(path, error) from error
        except BaseException:
            os.close(fd)
            raise
        if _still_named(fd, path):
            return HeldFileLock(path, fd, shared)
        os.close(fd)  # removed or replaced while we waited: lock what the name is now


def _open(path: Path) -> int:
    try:
        return open_private(path, os.O_RDWR)
    except OSError as error:
        raise _unusable(path, error) from error


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def _unusable(path: Path, error: OSError) -> LockDirError:
    return LockDirError(
        f"cannot lock {path}: {error.strerror or error}. The lock directory must be on a "
        f"local filesystem that supports flock(); set {LOCK_DIR_ENV} to one",
        path,
    )
