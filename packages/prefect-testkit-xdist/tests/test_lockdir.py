from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli

from prefect_testkit_xdist import (
    AllocatorConfigError,
    LockDirError,
    lease_directory,
    lease_port,
    lock_dir,
)
from prefect_testkit_xdist._lockdir import filesystem_type

NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_lock_dir_is_created_private_even_with_a_permissive_umask(lock_root: Path) -> None:
    previous = os.umask(0)
    try:
        assert lock_dir() == lock_root
    finally:
        os.umask(previous)
    assert _mode(lock_root) == 0o700
    assert lock_root.stat().st_uid == os.geteuid()


def test_default_lock_dir_is_per_user_under_the_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_TESTKIT_LOCK_DIR")
    expected = Path(tempfile.gettempdir()) / f"prefect-testkit-{os.geteuid()}"
    assert lock_dir() == expected
    assert _mode(expected) == 0o700


def test_lock_files_records_and_directories_are_private(lock_root: Path) -> None:
    with lease_port() as port, lease_directory() as directory:
        assert _mode(directory.path) == 0o700
        for entry in lock_root.rglob("*"):
            expected = 0o700 if entry.is_dir() else 0o600
            assert _mode(entry) == expected, entry
        assert (lock_root / "ports" / f"{port.port}.lock").exists()


def test_lock_dir_owned_by_another_user_is_refused(lock_root: Path) -> None:
    lock_root.mkdir(mode=0o700)
    os.chown(lock_root, NOBODY, NOBODY)
    with pytest.raises(LockDirError, match=f"owned by uid {NOBODY}, not by you") as caught:
        lock_dir()
    assert str(lock_root) in str(caught.value)
    assert "PREFECT_TESTKIT_LOCK_DIR" in str(caught.value)
    # The refusal happens before anything is locked or written there.
    with pytest.raises(LockDirError):
        lease_port()
    assert list(lock_root.iterdir()) == []


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_group_or_world_writable_lock_dir_is_refused(lock_root: Path, mode: int) -> None:
    lock_root.mkdir()
    lock_root.chmod(mode)
    with pytest.raises(LockDirError, match=f"mode {mode:04o}, writable by group or others"):
        lease_directory()
    assert list(lock_root.iterdir()) == []


def test_symlink_to_a_directory_we_own_is_followed(tmp_path: Path, lock_root: Path) -> None:
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    lock_root.symlink_to(target)
    with lease_directory() as lease:
        assert lease.path.resolve().is_relative_to(target)


def test_lock_dir_that_cannot_be_created_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # We run as root, so permission bits would not stop mkdir; a path below a regular file fails
    # with ENOTDIR for every user, root included.
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("")
    unwritable = blocker / "locks"
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(unwritable))
    with pytest.raises(LockDirError, match="cannot create") as caught:
        lease_port()
    assert str(unwritable.parent) in str(caught.value)


def test_lock_dir_that_is_a_file_is_refused(lock_root: Path) -> None:
    lock_root.write_text("")
    with pytest.raises(LockDirError, match="not a directory"):
        lock_dir()


def test_relative_lock_dir_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", "relative/locks")
    with pytest.raises(AllocatorConfigError, match="'relative/locks' is a relative path"):
        lock_dir()


def test_cli_reports_a_bad_lock_dir_as_an_error(lock_root: Path) -> None:
    lock_root.mkdir()
    lock_root.chmod(0o777)
    result = run_cli("leases")
    assert result.returncode == 2
    assert "writable by group or others" in result.stderr


_MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid 0 0
server:/export /home nfs4 rw,vers=4.2 0 0
server:/other /home/with\\040space nfs rw 0 0
/dev/vdb /home/local ext4 rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "ext4"),
        ("/var/tmp/x", "ext4"),
        ("/tmp/prefect-testkit-0", "tmpfs"),
        ("/tmpfoo", "ext4"),
        ("/home/alice/locks", "nfs4"),
        ("/home/with space/locks", "nfs"),
        ("/home/local/locks", "ext4"),
    ],
)
def test_filesystem_type_picks_the_innermost_mount(path: str, expected: str) -> None:
    assert filesystem_type(Path(path), _MOUNTS) == expected


def test_filesystem_of_the_real_lock_dir_is_known_and_local(lock_root: Path) -> None:
    fs_type = filesystem_type(lock_dir())
    assert fs_type is not None
    assert "nfs" not in fs_type


def test_bazel_default_lock_dir_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_TESTKIT_LOCK_DIR")
    monkeypatch.setenv("TEST_TMPDIR", "/tmp/bazel-test-tmp")
    result = run_cli("where")
    assert result.returncode == 0
    assert "--test_env=PREFECT_TESTKIT_LOCK_DIR=" in result.stdout
    assert "--sandbox_writable_path=" in result.stdout
