"""Kernel-held locks, the owner records written beside them, and the views built on both.

Ownership of a resource is the flock() on its lock file, nothing else: the kernel drops it the
moment the holding process dies, however it dies. The JSON record next to the lock only says who
took it, for error messages and `prefect-testkit leases`; it is never trusted to decide liveness.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from ._files import write_private
from ._identity import worker_identity
from ._lockdir import DIRECTORIES_SUBDIR, PORTS_SUBDIR, lock_dir
from ._locks import HeldFileLock, Releasable, is_file_locked, try_lock_file

LeaseKind = Literal["port", "directory"]
# Packages that keep resources outside a leased directory (a PostgreSQL database, say)
# register a callable(directory) here; `clean` calls it before removing a dead directory.
CLEANUP_ENTRY_POINTS = "prefect_testkit.cleanup"

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
RECORD_SUFFIX = ".json"
KEPT_SUFFIX = ".kept"  # beside a directory released with remove=False: never reused
RECORD_TMP_SUFFIX = ".json.tmp"
_RECORD_VERSION = 1
_MAX_HOLDERS_SHOWN = 10
_CMDLINE_CHARS = 160


class HeldLock:
    """One held lock file plus the owner record it vouches for; released at most once."""

    def __init__(self, lock: HeldFileLock) -> None:
        self._lock = lock
        self.lock_path = lock.path
        self._mutex = threading.Lock()
        self._owner_pid = os.getpid()

    @classmethod
    def try_take(cls, lock_path: Path) -> HeldLock | None:
        """Take the lock without waiting; None if someone else (this process included) holds it."""
        lock = try_lock_file(lock_path)
        return None if lock is None else cls(lock)

    @property
    def in_owner_process(self) -> bool:
        """False in a forked child, which shares the lock but must not end the parent's lease."""
        return os.getpid() == self._owner_pid

    @property
    def record_path(self) -> Path:
        return record_path_for(self.lock_path)

    @property
    def released(self) -> bool:
        return self._lock.released

    def write_record(self, kind: LeaseKind, resource: str, path: Path | None) -> None:
        identity = worker_identity()
        pid = os.getpid()
        record = {
            "version": _RECORD_VERSION,
            "kind": kind,
            "resource": resource,
            "path": None if path is None else str(path),
            "pid": pid,
            "start_time": process_start_time(pid),
            "cmdline": process_cmdline(),
            "worker": identity.worker,
            "run_id": identity.run_id,
            "acquired_at": time.time(),
        }
        # Only the lock holder writes these names, so a fixed temporary name cannot collide,
        # and `clean` knows it; the rename keeps readers from ever seeing half a record.
        write_private(
            self.record_path,
            json.dumps(record),
            temp=self.lock_path.with_suffix(RECORD_TMP_SUFFIX),
        )

    def unlock_only(self) -> None:
        """Drop the lock but keep the record: for probes, which must not erase a holder's record."""
        self._lock.release()

    def release(self, before_unlock: list[Path] | None = None) -> None:
        """Delete the record (and `before_unlock` paths) while still holding, then unlock.

        A forked child only closes its own copy of the lock: the record, and the lock
        itself, stay its parent's.
        """
        with self._mutex:
            if self._lock.released:
                return
            try:
                if self.in_owner_process:
                    for path in [self.record_path, *(before_unlock or [])]:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
            finally:
                self._lock.release()


class Lease(Releasable):
    """What a port lease and a directory lease share: a held lock and its release protocol."""

    def __init__(self, held: HeldLock) -> None:
        self._held = held
        self._mutex = threading.Lock()

    @property
    def released(self) -> bool:
        return self._held.released

    @abc.abstractmethod
    def _resource(self) -> str:
        """The leased resource, for repr."""

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<{type(self).__name__} {self._resource()} {state}>"


def record_path_for(lock_path: Path) -> Path:
    return lock_path.with_suffix(RECORD_SUFFIX)


_own_start_time: dict[int, float | None] = {}


def process_start_time(pid: int) -> float | None:
    """Seconds since the epoch when `pid` started (Linux /proc), to tell a reused pid apart."""
    if pid in _own_start_time:
        return _own_start_time[pid]
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat_text[stat_text.rindex(")") + 2 :].split()[19])
        boot_time = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        started: float | None = boot_time + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        started = None
    if pid == os.getpid():
        _own_start_time[pid] = started
    return started


def process_cmdline() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except OSError:
        argv = list(getattr(sys, "orig_argv", sys.argv))
    return shlex.join(argv)


@dataclass(frozen=True)
class LeaseRecord:
    """A live lease as its holder described itself. Diagnostic data only."""

    kind: LeaseKind
    resource: str
    lock_path: Path
    path: Path | None
    pid: int | None
    start_time: float | None
    cmdline: str
    worker: str
    run_id: str
    acquired_at: float | None

    @property
    def age(self) -> float | None:
        """Seconds since the lease was taken, or None if the holder has not written its record."""
        return None if self.acquired_at is None else max(0.0, time.time() - self.acquired_at)

    def describe(self) -> str:
        age = "age unknown" if self.age is None else f"age {self.age:.1f}s"
        pid = "pid unknown" if self.pid is None else f"pid {self.pid}"
        return f"{self.resource}: {pid}, {age}, worker {self.worker}, command: {self.short_cmdline}"

    @property
    def short_cmdline(self) -> str:
        """The command line on one line, cut to a readable length."""
        flat = " ".join(self.cmdline.split())
        return flat if len(flat) <= _CMDLINE_CHARS else flat[: _CMDLINE_CHARS - 3] + "..."


def _read_record(kind: LeaseKind, lock_path: Path) -> LeaseRecord:
    resource = f"{kind} {lock_path.name.removesuffix(LOCK_SUFFIX)}"
    try:
        data = json.loads(record_path_for(lock_path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError
        path = data.get("path")
        pid = data.get("pid")
        start_time = data.get("start_time")
        acquired_at = data.get("acquired_at")
        return LeaseRecord(
            kind=kind,
            resource=str(data.get("resource", resource)),
            lock_path=lock_path,
            path=Path(path) if isinstance(path, str) else None,
            pid=pid if isinstance(pid, int) else None,
            start_time=float(start_time) if isinstance(start_time, (int, float)) else None,
            cmdline=str(data.get("cmdline", "?")),
            worker=str(data.get("worker", "?")),
            run_id=str(data.get("run_id", "?")),
            acquired_at=float(acquired_at) if isinstance(acquired_at, (int, float)) else None,
        )
    except (OSError, ValueError, TypeError):
        # The holder is between taking the lock and writing its record, or was written by
        # something else; the lock alone proves the lease is live.
        return LeaseRecord(kind, resource, lock_path, None, None, None, "?", "?", "?", None)


def holder_of(kind: LeaseKind, lock_path: Path) -> LeaseRecord:
    return _read_record(kind, lock_path)


def describe_holders(records: list[LeaseRecord]) -> str:
    lines = [f"  - {record.describe()}" for record in records[:_MAX_HOLDERS_SHOWN]]
    if len(records) > _MAX_HOLDERS_SHOWN:
        lines.append(f"  - ... and {len(records) - _MAX_HOLDERS_SHOWN} more")
    return "\n".join(lines)


def _lock_files(subdir: Path) -> list[Path]:
    try:
        return sorted(entry for entry in subdir.iterdir() if entry.name.endswith(LOCK_SUFFIX))
    except FileNotFoundError:
        return []


def list_leases() -> list[LeaseRecord]:
    """Every live lease, found by probing each lock without waiting (records are not trusted)."""
    root = lock_dir()
    leases: list[LeaseRecord] = []
    for kind, subdir in (("port", PORTS_SUBDIR), ("directory", DIRECTORIES_SUBDIR)):
        for lock_path in _lock_files(root / subdir):
            if is_file_locked(lock_path):
                leases.append(_read_record(kind, lock_path))  # type: ignore[arg-type]
    return leases


def _remove_path(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def _release_outside_resources(directory: Path) -> bool:
    """Run the registered cleanup hooks on a dead directory; False if one failed."""
    if not directory.is_dir():
        return True
    for hook in entry_points(group=CLEANUP_ENTRY_POINTS):
        try:
            hook.load()(directory)
        except Exception as exc:
            logger.warning(
                "kept %s: its %s cleanup failed (%s: %s); run clean again once that is fixed",
                directory,
                hook.name,
                type(exc).__name__,
                exc,
            )
            return False
    return True


def clean() -> list[Path]:
    """Remove leased directories, records and directory locks that no live process holds.

    What a dead holder kept outside its directory is released first, by the hooks
    registered under the ``prefect_testkit.cleanup`` entry point group; a directory whose
    hook fails stays, for the next clean.
    """
    root = lock_dir()
    removed: list[Path] = []
    directories = root / DIRECTORIES_SUBDIR
    names: set[str] = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in directories.iterdir():
            name = entry.name
            for suffix in (LOCK_SUFFIX, RECORD_TMP_SUFFIX, RECORD_SUFFIX, KEPT_SUFFIX):
                name = name.removesuffix(suffix)
            names.add(name)
    for name in sorted(names):
        lock_path = directories / f"{name}{LOCK_SUFFIX}"
        held = HeldLock.try_take(lock_path)
        if held is None:
            continue
        if not _release_outside_resources(directories / name):
            held.unlock_only()
            continue
        leftovers = [
            directories / name,
            directories / f"{name}{KEPT_SUFFIX}",
            lock_path.with_suffix(RECORD_TMP_SUFFIX),
            held.record_path,
        ]
        try:
            removed.extend(path for path in leftovers if _remove_path(path))
        finally:
            # The lock file goes last and while still held: a process that opened it before the
            # unlink finds it unlinked after flock() succeeds, and the lock loop then retries on a
            # fresh file, so deleting it can never grant one directory twice.
            held.release(before_unlock=[lock_path])
    for lock_path in _lock_files(root / PORTS_SUBDIR):
        # Port lock files stay forever: there are at most 65535 and waiters may hold them open.
        record = record_path_for(lock_path)
        tmp = lock_path.with_suffix(RECORD_TMP_SUFFIX)
        if not (record.exists() or tmp.exists()):
            continue
        held = HeldLock.try_take(lock_path)
        if held is None:
            continue
        try:
            removed.extend(path for path in (record, tmp) if _remove_path(path))
        finally:
            held.unlock_only()
    return removed
