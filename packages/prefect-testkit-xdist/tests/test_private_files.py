"""Private files are born private: created 0600 (directories 0700) whatever the umask.

Every test runs under umask 000, where a file created with the default mode would be
world-writable: a mode seen here is the mode the file was created with, since nothing in
between may widen or narrow it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_testkit_xdist import (
    copy_private,
    lease_directory,
    lease_port,
    make_private_dir,
    open_private,
    write_private,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    with umask(0):
        yield


pytestmark = pytest.mark.usefixtures("permissive_umask")


def test_write_private_creates_0600_and_replaces_a_wider_file(tmp_path: Path) -> None:
    target = tmp_path / "credentials"
    write_private(target, "first")
    assert mode(target) == 0o600
    target.chmod(0o644)
    write_private(target, b"second")
    # The new file replaced the old one; it does not inherit the old file's mode.
    assert mode(target) == 0o600
    assert target.read_text() == "second"
    assert sorted(os.listdir(tmp_path)) == ["credentials"]


def test_exclusive_write_keeps_an_existing_file_and_names_it(tmp_path: Path) -> None:
    target = tmp_path / "password"
    write_private(target, "kept", exclusive=True)
    with pytest.raises(FileExistsError) as caught:
        write_private(target, "other", exclusive=True)
    assert caught.value.filename is not None
    assert str(target) in {str(caught.value.filename), str(caught.value.filename2)}
    assert target.read_text() == "kept"
    assert mode(target) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["password"]


def test_a_fixed_temporary_name_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    target, temp = tmp_path / "record.json", tmp_path / "record.json.tmp"
    temp.write_text("half a rec")
    temp.chmod(0o666)
    write_private(target, "{}", temp=temp)
    assert target.read_text() == "{}"
    assert mode(target) == 0o600
    assert not temp.exists()


def test_a_symlink_at_the_name_is_replaced_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "record"
    link.symlink_to(victim)
    write_private(link, "ours")
    assert not link.is_symlink()
    assert victim.read_text() == "untouched"
    link.unlink()
    link.symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links") as caught:
        open_private(link, os.O_WRONLY | os.O_APPEND)
    assert caught.value.errno == errno.ELOOP
    assert victim.read_text() == "untouched"


def test_open_private_creates_0600_and_keeps_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    for line in (b"one\n", b"two\n"):
        fd = open_private(log, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    assert mode(log) == 0o600
    assert log.read_bytes() == b"one\ntwo\n"


def test_a_copy_is_private_from_its_first_byte_to_its_rename(tmp_path: Path) -> None:
    # The source is a FIFO, so the copy blocks midway, holding its temporary file, until
    # this test writes the data: the temporary file is observed, not assumed.
    source = tmp_path / "source"
    os.mkfifo(source, 0o600)
    target_dir = tmp_path / "harness"
    target_dir.mkdir()
    target = target_dir / "prefect.db"
    errors: list[BaseException] = []

    def copy() -> None:
        try:
            copy_private(source, target)
        except BaseException as exc:
            errors.append(exc)

    copier = threading.Thread(target=copy)
    copier.start()
    try:
        with source.open("wb") as writer:
            # The copier now holds its temporary file and waits for the first byte.
            deadline = time.monotonic() + 10
            while not (temps := list(target_dir.iterdir())) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(temps) == 1, temps
            assert temps[0] != target
            assert mode(temps[0]) == 0o600
            assert not target.exists()
            writer.write(b"the whole database")
    finally:
        copier.join(10)
    assert not copier.is_alive()
    assert errors == []
    assert target.read_bytes() == b"the whole database"
    assert mode(target) == 0o600
    assert os.listdir(target_dir) == ["prefect.db"]


def test_a_copy_of_a_world_readable_file_is_private(tmp_path: Path) -> None:
    source = tmp_path / "seed.db"
    source.write_bytes(b"SQLite format 3\0")
    source.chmod(0o644)
    target = tmp_path / "prefect.db"
    copy_private(source, target)
    assert mode(target) == 0o600
    assert target.read_bytes() == source.read_bytes()


def test_a_write_that_fails_midway_leaves_neither_half_nor_temp(tmp_path: Path) -> None:
    # A real failure inside write(): the file size limit, in a child process of its own.
    target = tmp_path / "cluster.json"
    write_private(target, "old")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from prefect_testkit_xdist import write_private
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_private(Path({str(target)!r}), b"x" * 100_000)
        except OSError as exc:
            sys.exit(exc.errno)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == errno.EFBIG, result.stderr
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["cluster.json"]


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o277], ids=oct)
def test_private_directories_are_0700_under_any_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "private"
    with umask(mask):
        make_private_dir(path)
    # 0o277 takes the owner's own write bit: the directory would be useless, so the
    # owner's bits are restored, and never anyone else's.
    assert mode(path) == 0o700


def test_an_existing_directory_is_left_for_the_caller_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    path.mkdir()
    path.chmod(0o755)
    make_private_dir(path, exist_ok=True)
    assert mode(path) == 0o755
    with pytest.raises(FileExistsError):
        make_private_dir(path)


def test_every_file_of_real_leases_is_born_private(lock_root: Path) -> None:
    with lease_port() as port, lease_directory() as directory:
        assert mode(directory.path) == 0o700
        assert (lock_root / "ports" / f"{port.port}.json").is_file()
        assert directory.path.with_name(directory.path.name + ".json").is_file()
        for entry in [lock_root, *lock_root.rglob("*")]:
            assert mode(entry) == (0o700 if entry.is_dir() else 0o600), entry
    kept = lease_directory()
    kept.release(remove=False)
    marker = kept.path.with_name(kept.path.name + ".kept")
    assert mode(marker) == 0o600
    assert mode(kept.path) == 0o700
