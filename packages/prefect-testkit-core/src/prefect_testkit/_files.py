"""Files the harness writes are its owner's alone (0600), whatever the umask says, and
the file locks it takes.

One helper makes every private file and directory, the lease allocator's, which writes
private files too and sits below us; see `prefect_testkit_xdist._files` for how. Locks
are the allocator's file locks too (`prefect_testkit_xdist.lock_file`), so that every
lock of the testkit is taken and released one way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from prefect_testkit._errors import HarnessStartupError, allocator_errors
from prefect_testkit_xdist import (
    HeldFileLock,
    LockTimeoutError,
    copy_private,
    lock_file,
    make_private_dir,
    open_private,
    write_private,
)

__all__ = [
    "copy_private",
    "hold_lock",
    "make_private_dir",
    "open_private",
    "open_private_append",
    "write_private",
]


def open_private_append(path: Path) -> BinaryIO:
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab")


def hold_lock(
    path: Path, *, waiting_for: str, timeout: float | None, shared: bool = False
) -> HeldFileLock:
    """`lock_file`, failing with the harness's own errors; a timeout names `waiting_for`."""
    with allocator_errors():
        try:
            return lock_file(path, shared=shared, timeout=timeout)
        except LockTimeoutError as exc:
            raise HarnessStartupError(
                f"Waited {exc.timeout:g} s for {waiting_for} (lock {exc.path})."
            ) from None
