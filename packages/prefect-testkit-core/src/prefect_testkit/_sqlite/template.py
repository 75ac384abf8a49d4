"""A migrated template database, built once per Prefect version and migration set.

A fresh SQLite database costs a full Alembic upgrade (seconds) plus block type
registration on the server's first start. The first harness on a machine snapshots
its database (and the memo store that lets later servers skip registration) into a
cache; later harnesses copy it and the server only confirms it is at head.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import prefect

from prefect_testkit._errors import HarnessConfigError, allocator_errors
from prefect_testkit._files import copy_private, hold_lock, make_private_dir, open_private
from prefect_testkit._prefect import migrations_directory
from prefect_testkit.config import CACHE_DIR_ENV, read_cache_dir
from prefect_testkit_xdist import HeldFileLock, lock_dir

_LOCK_TIMEOUT_SECONDS = 60.0


def cache_dir() -> Path:
    path = read_cache_dir()
    if path is None:
        with allocator_errors():
            path = lock_dir() / "cache"
    try:
        # Only the cache itself is ours to make private; the path to it is the user's.
        path.parent.mkdir(parents=True, exist_ok=True)
        make_private_dir(path, exist_ok=True)
    except OSError as exc:
        raise HarnessConfigError(
            f"{CACHE_DIR_ENV}: cannot create the template cache directory {path}: {exc}"
        ) from None
    return path


def migrations_fingerprint(dialect: str) -> str:
    """Prefect's version and its migration files for a dialect: a template is valid for both."""
    versions = migrations_directory() / "versions" / dialect
    digest = hashlib.sha256(prefect.__version__.encode())
    for migration in sorted(versions.glob("*.py")):
        digest.update(migration.name.encode())
    return digest.hexdigest()[:16]


def _is_sound(database: Path) -> bool:
    """A template we can trust: SQLite's own check passes and a migration head is recorded."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            if db.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return False
            heads: tuple[int] = db.execute("SELECT count(*) FROM alembic_version").fetchone()
            return heads == (1,)
    except sqlite3.Error:
        return False


class TemplateCache:
    """The cached template for this Prefect version: restore it into a harness, or save one."""

    def __init__(self) -> None:
        stem = cache_dir() / f"sqlite-{migrations_fingerprint('sqlite')}"
        self.database = stem.with_suffix(".db")
        self.memo_store = stem.with_suffix(".memo_store.toml")
        self._lock_path = stem.with_suffix(".lock")

    def _locked(self) -> HeldFileLock:
        return hold_lock(
            self._lock_path,
            waiting_for="another harness to copy or save the template",
            timeout=_LOCK_TIMEOUT_SECONDS,
        )

    def restore(self, database: Path, home: Path) -> bool:
        """Copy the template into a new harness; False when there is no sound one."""
        with self._locked():
            if not self.database.is_file():
                return False
            if not _is_sound(self.database):
                # Corrupt or half-written: rebuilt by the next save(), never trusted.
                self.database.unlink()
                return False
            copy_private(self.database, database)
            if self.memo_store.is_file():
                copy_private(self.memo_store, home / "memo_store.toml")
            return True

    def save(self, database: Path, home: Path) -> None:
        """Snapshot a freshly started harness's database as the template.

        Best effort: a cache that cannot be written (a full disk, say) costs the next
        harness a migration, never a failure.
        """
        with self._locked():
            if self.database.is_file() and _is_sound(self.database):
                return  # another harness saved one first
            partial = self.database.with_suffix(".partial")
            try:
                self._write(database, home, partial)
            except (OSError, sqlite3.Error):
                partial.unlink(missing_ok=True)

    def _write(self, database: Path, home: Path, partial: Path) -> None:
        # Made here, 0600, for SQLite to fill: SQLite would create it with the umask's mode
        # (its journal copies the database file's). A crashed save's leftover goes first.
        partial.unlink(missing_ok=True)
        os.close(open_private(partial, os.O_WRONLY | os.O_EXCL))
        # The backup API copies a consistent snapshot while the server keeps running.
        with (
            closing(sqlite3.connect(database)) as source,
            closing(sqlite3.connect(partial)) as target,
        ):
            source.backup(target)
            # One self-contained file: readers then need no -wal/-shm beside it.
            target.execute("PRAGMA journal_mode=DELETE")
        memo_store = home / "memo_store.toml"
        if memo_store.is_file():
            copy_private(memo_store, self.memo_store)
        os.replace(partial, self.database)
