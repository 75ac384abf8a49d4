"""The machine-wide, per-user directory that holds every lock, owner record and leased directory."""

from __future__ import annotations

import functools
import os
import stat
import tempfile
from pathlib import Path

from ._config import ALLOW_NETWORK_FS_ENV, LOCK_DIR_ENV, env_value
from ._errors import AllocatorConfigError, LockDirError
from ._files import make_private_dir

BAZEL_TEST_TMPDIR_ENV = "TEST_TMPDIR"

# flock() on these is either not forwarded to a server at all or only emulated there, so two
# machines (or a client and a server-side process) can both "hold" the same lock.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "lustre",
        "gpfs",
        "beegfs",
    }
)

PORTS_SUBDIR = "ports"
DIRECTORIES_SUBDIR = "dirs"


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"prefect-testkit-{os.geteuid()}"


def configured_lock_dir() -> Path:
    """The lock directory path from the environment or the default, without touching the disk."""
    raw = env_value(LOCK_DIR_ENV)
    if raw is None:
        return default_lock_dir()
    if "\0" in raw:
        raise AllocatorConfigError(f"{LOCK_DIR_ENV}={raw!r} contains a NUL byte; use a plain path")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise AllocatorConfigError(
            f"{LOCK_DIR_ENV}={raw!r} is a relative path; use an absolute path so that every "
            "process, whatever its working directory, shares one lock directory"
        )
    return path


def bazel_note() -> str | None:
    """Explain the consequence of running under Bazel with the default lock directory, if we are."""
    if env_value(BAZEL_TEST_TMPDIR_ENV) is None or env_value(LOCK_DIR_ENV) is not None:
        return None
    return (
        f"running under Bazel ({BAZEL_TEST_TMPDIR_ENV} is set) with the default lock directory "
        f"{default_lock_dir()}: Bazel gives each test its own temporary directory (and, with a "
        "hermetic sandbox, its own /tmp), so leases only coordinate within this one test, and "
        "shards of other tests cannot see them. Ports stay safe against double binding, but "
        "waits and `prefect-testkit leases` only see this test. To share leases machine-wide, run "
        f"bazel test --test_env={LOCK_DIR_ENV}=/var/tmp/prefect-testkit-$USER "
        "--sandbox_writable_path=/var/tmp/prefect-testkit-$USER"
    )


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def filesystem_type(path: Path, mounts_text: str | None = None) -> str | None:
    """The type of the filesystem holding `path`, from /proc/mounts; None where unknown."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = _unescape_mount_field(fields[1])
        prefix = mount_point.rstrip("/") + "/"
        if (target == mount_point or target.startswith(prefix) or mount_point == "/") and (
            best is None or len(mount_point) >= best[0]
        ):
            # Later lines shadow earlier ones mounted at the same point, hence ">=".
            best = (len(mount_point), fields[2])
    return None if best is None else best[1]


@functools.lru_cache(maxsize=16)
def _cached_filesystem_type(path: str, device: int) -> str | None:
    # Keyed on the device too, so a filesystem mounted over the path later is looked up afresh.
    return filesystem_type(Path(path))


def _check_filesystem(path: Path) -> None:
    fs_type = _cached_filesystem_type(str(path), path.stat().st_dev)
    if fs_type is None or fs_type not in NETWORK_FILESYSTEMS:
        return
    if env_value(ALLOW_NETWORK_FS_ENV) == "1":
        return
    raise LockDirError(
        f"lock directory {path} is on a {fs_type} network filesystem, where flock() does not "
        "reliably exclude processes on different machines, so two test runs could be granted the "
        f"same port or directory. Set {LOCK_DIR_ENV} to a directory on a local filesystem "
        f"(e.g. /tmp or /var/tmp), or, if only this one machine ever uses it, set "
        f"{ALLOW_NETWORK_FS_ENV}=1",
        path,
    )


def _check_owner(path: Path, st: os.stat_result, what: str) -> None:
    uid = os.geteuid()
    if st.st_uid != uid:
        raise LockDirError(
            f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {uid}); another user "
            "could then hold, steal or read your leases and databases. Remove it, or set "
            f"{LOCK_DIR_ENV} to a directory you own",
            path,
        )


def _check_ownership(path: Path, st: os.stat_result, what: str) -> None:
    _check_owner(path, st, what)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LockDirError(
            f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}, writable by group or others, "
            f"who could then delete or replace your locks. Run `chmod 700 {path}`, or set "
            f"{LOCK_DIR_ENV} to a private directory",
            path,
        )


def _ensure_private_dir(path: Path, what: str) -> None:
    try:
        make_private_dir(path, exist_ok=True)
    except OSError as error:
        raise LockDirError(
            f"cannot create {what} {path}: {error.strerror or error}. Set {LOCK_DIR_ENV} to a "
            "directory you can create and write",
            path,
        ) from error
    try:
        st = path.lstat()
    except OSError as error:
        raise LockDirError(
            f"cannot inspect {what} {path}: {error.strerror or error}", path
        ) from error
    if stat.S_ISLNK(st.st_mode):
        # A symlink's own mode is always 0777 and means nothing; whoever owns it can redirect it.
        _check_owner(path, st, f"{what} (a symlink)")
        try:
            st = path.stat()
        except OSError as error:
            raise LockDirError(
                f"{what} {path} is a dangling symlink: {error.strerror or error}", path
            ) from error
    if not stat.S_ISDIR(st.st_mode):
        raise LockDirError(
            f"{what} {path} exists but is not a directory. Remove it, or set {LOCK_DIR_ENV} "
            "to another path",
            path,
        )
    _check_ownership(path, st, what)


def lock_dir() -> Path:
    """Return the validated lock directory, creating it (mode 0700) if needed."""
    path = configured_lock_dir()
    parent = path.parent
    if not parent.is_dir():
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise LockDirError(
                f"cannot create the parent {parent} of the lock directory {path}: "
                f"{error.strerror or error}. Set {LOCK_DIR_ENV} to a directory you can create",
                parent,
            ) from error
    _ensure_private_dir(path, "lock directory")
    _check_filesystem(path)
    return path


def lock_subdir(name: str) -> Path:
    """A validated, private subdirectory of the lock directory."""
    path = lock_dir() / name
    _ensure_private_dir(path, "lock subdirectory")
    return path
