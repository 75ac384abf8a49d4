"""Private files and directories, born with their final mode.

Everything the testkit keeps (lease records, databases, passwords, logs) is its owner's
alone. A file made with the umask's mode and narrowed by a chmod afterwards is readable
by others in between, so every private file is created by `open_private` with mode 0600
and every private directory by `make_private_dir` with 0700: the umask can only take
bits away from those, never add any. A file that replaces another, or must never be seen
half-written, is filled under a fresh name in the same directory, created exclusively,
and then renamed (or linked) into place in one atomic step.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_COPY_CHUNK = 1 << 20


def _restore_owner_access(target: int | Path, mode: int) -> None:
    # Only for a umask that took the owner's own bits (0o2xx, say): the file or directory
    # would be useless to us. Adds owner bits only, so it never widens access for others.
    if stat.S_IMODE(os.stat(target).st_mode) & mode != mode:
        os.chmod(target, mode)


def open_private(path: Path, flags: int = os.O_WRONLY) -> int:
    """Open `path` with `flags`, creating it with mode 0600 if absent; return the descriptor.

    Symlinks are never followed: a link planted at the name must not redirect our write.
    """
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        _restore_owner_access(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_private_dir(path: Path, *, exist_ok: bool = False) -> None:
    """Create the directory `path` with mode 0700 (its parent must exist).

    With `exist_ok`, an existing entry is left as it is: callers that must trust it check
    its owner and mode themselves.
    """
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        if exist_ok:
            return
        raise
    _restore_owner_access(path, PRIVATE_DIR_MODE)


def _publish(
    path: Path, fill: Callable[[BinaryIO], None], *, exclusive: bool, temp: Path | None
) -> None:
    if temp is None:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    else:
        # A fixed name only its caller writes (under a lock): whatever is there is a crashed
        # writer's leftover, and exclusive creation below must not trip over it.
        temp.unlink(missing_ok=True)
    with os.fdopen(open_private(temp, os.O_WRONLY | os.O_EXCL), "wb") as stream:
        try:
            fill(stream)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    try:
        if exclusive:
            # link() fails if the name exists, where rename() would replace it.
            os.link(temp, path)
        else:
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def write_private(
    path: Path, data: str | bytes, *, exclusive: bool = False, temp: Path | None = None
) -> None:
    """Atomically make `path` a 0600 file holding `data` (text is written as UTF-8).

    Readers see the old file or the whole new one, never a part. With `exclusive`, an
    existing `path` is kept and FileExistsError raised instead. `temp`: a fixed name beside
    `path` to fill first, for callers that hold a lock over it and clean up after a crash
    by that name; by default a fresh hidden name.
    """
    raw = data.encode() if isinstance(data, str) else data

    def fill(stream: BinaryIO) -> None:
        stream.write(raw)

    _publish(path, fill, exclusive=exclusive, temp=temp)


def copy_private(source: Path, target: Path) -> None:
    """Atomically make `target` a 0600 copy of `source`'s contents (never of its mode)."""
    with source.open("rb") as origin:
        _publish(
            target,
            lambda stream: shutil.copyfileobj(origin, stream, _COPY_CHUNK),
            exclusive=False,
            temp=None,
        )
