"""Leases on per-worker directories for a harness's SQLite database and home."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
from pathlib import Path

from ._config import poll_delays, resolve_timeout
from ._errors import AllocatorConfigError, PoolExhaustedError
from ._files import make_private_dir, open_private
from ._identity import worker_identity
from ._leases import (
    KEPT_SUFFIX,
    LOCK_SUFFIX,
    HeldLock,
    Lease,
    describe_holders,
    holder_of,
)
from ._lockdir import DIRECTORIES_SUBDIR, bazel_note, lock_subdir

_PURPOSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
# Index numbers separate leases of one worker and purpose, such as nested harnesses, and plain
# processes that all call themselves "local_main". Far more than any sane nesting depth.
MAX_DIRECTORIES_PER_NAME = 256


class DirectoryLease(Lease):
    """A private (0700) directory that no other live lease can be granted while this one is held."""

    def __init__(self, path: Path, held: HeldLock) -> None:
        super().__init__(held)
        self.path = path

    def release(self, *, remove: bool = True) -> None:
        """Give up the directory, deleting it unless `remove=False`. Safe to call repeatedly."""
        with self._mutex:
            if self._held.released:
                return
            try:
                if self._held.in_owner_process:
                    if remove:
                        _remove_tree(self.path)
                    else:
                        # Kept for inspection: later leases skip this name until `clean`.
                        os.close(open_private(self.path.with_name(self.path.name + KEPT_SUFFIX)))
            finally:
                self._held.release()

    def _resource(self) -> str:
        return str(self.path)


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()


def _fresh_directory(path: Path) -> None:
    # The lock is free, so whatever is here was left by a dead or finished holder: start empty.
    _remove_tree(path)
    make_private_dir(path)


def lease_directory(purpose: str = "harness", *, timeout: float | None = None) -> DirectoryLease:
    """Lease an empty private directory named after this worker, `purpose` and a free index."""
    if not isinstance(purpose, str) or _PURPOSE.match(purpose) is None:
        raise AllocatorConfigError(
            f"purpose={purpose!r} is not allowed; use 1-40 letters, digits or '-', "
            "starting with a letter or digit (e.g. 'harness' or 'db-2')"
        )
    wait = resolve_timeout(timeout)
    directory = lock_subdir(DIRECTORIES_SUBDIR)
    deadline = time.monotonic() + wait
    delays = poll_delays()
    while True:
        # Read afresh each round: the identity is part of the name and the environment may change.
        base = f"{worker_identity().slug}_{purpose}"
        busy: list[Path] = []
        for index in range(MAX_DIRECTORIES_PER_NAME):
            name = f"{base}_{index}"
            lock_path = directory / f"{name}{LOCK_SUFFIX}"
            held = HeldLock.try_take(lock_path)
            if held is None:
                busy.append(lock_path)
                continue
            path = directory / name
            if path.with_name(name + KEPT_SUFFIX).exists():
                held.unlock_only()
                continue
            try:
                _fresh_directory(path)
                held.write_record("directory", f"directory {name}", path)
            except BaseException:
                try:
                    _remove_tree(path)
                finally:
                    held.release()
                raise
            return DirectoryLease(path, held)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holders = [holder_of("directory", lock_path) for lock_path in busy]
            message = (
                f"all {MAX_DIRECTORIES_PER_NAME} directories named {base}_N are leased after "
                f"waiting {wait:g}s. Holders:\n{describe_holders(holders)}\n"
                "Release leases you no longer need, stop the holders (see `prefect-testkit "
                "leases`), or wait longer with PREFECT_TESTKIT_LEASE_TIMEOUT."
            )
            if (note := bazel_note()) is not None:
                message += f"\nNote: {note}"
            raise PoolExhaustedError(message, f"directories named {base}_N", holders, wait)
        time.sleep(min(next(delays), remaining))
