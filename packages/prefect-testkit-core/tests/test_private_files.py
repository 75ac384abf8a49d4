"""Everything the harness writes is born private, even under umask 000.

Under umask 000 a file created with a default mode is world-writable, and nothing here
changes a mode after creation: a mode seen is the mode a file was created with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import STARTUP_TIMEOUT, wait_until_gone

from prefect_testkit import HarnessHandle, prefect_test_harness
from prefect_testkit._postgres.cluster import (
    ClusterState,
    data_root,
    local_cluster,
    state_dir,
)
from prefect_testkit.testing import postgres_unavailable


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def assert_private_tree(root: Path) -> None:
    for entry in [root, *root.rglob("*")]:
        assert mode(entry) == (0o700 if entry.is_dir() else 0o600), entry


def assert_private_harness(harness: HarnessHandle) -> None:
    assert harness.database_file is not None
    assert harness.database_file.is_file()
    assert harness.log_path.is_file()
    assert_private_tree(harness.directory)


def test_a_harness_its_template_and_its_seeded_copy_are_born_private(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with umask(0), pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_TESTKIT_CACHE_DIR", str(cache))
        # A fresh cache: this harness migrates its database and saves it as the template.
        with prefect_test_harness(STARTUP_TIMEOUT) as first:
            assert not first.database_from_template
            assert_private_harness(first)
        templates = list(cache.glob("*.db"))
        assert len(templates) == 1
        assert_private_tree(cache)

        # Restored from the template: a copy.
        with prefect_test_harness(STARTUP_TIMEOUT) as second:
            assert second.database_from_template
            assert_private_harness(second)

        # Seeded from a world-readable file: a copy too, private whatever the source's mode.
        seed = tmp_path / "seed.db"
        shutil.copyfile(templates[0], seed)
        seed.chmod(0o644)
        with prefect_test_harness(STARTUP_TIMEOUT, initial_database=seed) as third:
            assert_private_harness(third)


UNAVAILABLE = postgres_unavailable()


@pytest.mark.skipif(
    UNAVAILABLE is not None or bool(os.environ.get("PREFECT_TESTKIT_POSTGRES_URL")),
    reason=f"needs PostgreSQL's binaries for a local cluster: {UNAVAILABLE}",
)
def test_the_local_clusters_password_files_are_born_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock directory of our own: a cluster made from nothing, so initdb reads its
    # password from a file that exists only while it runs. A watcher sees it then.
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", str(tmp_path / "locks"))
    root = data_root()
    seen: list[tuple[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(root):
                    if ".pw" in entry.name:
                        with contextlib.suppress(FileNotFoundError):
                            seen.append((entry.name, stat.S_IMODE(entry.stat().st_mode)))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    supervisor_pid = None
    try:
        with umask(0), local_cluster(STARTUP_TIMEOUT):
            state = ClusterState.read(state_dir())
            assert state is not None
            supervisor_pid = state.supervisor_pid
            files = {name: mode(state_dir() / name) for name in os.listdir(state_dir())}
            assert {"password", "cluster.json", "supervisor.log", "users.lock"} <= set(files)
            assert set(files.values()) == {0o600}, files
            data = [entry for entry in root.iterdir() if entry.name.startswith("data-")]
            assert [mode(entry) for entry in data] == [0o700]
    finally:
        stop.set()
        watcher.join()
        if supervisor_pid is not None:
            # Unused, the cluster stops on its own within seconds.
            assert wait_until_gone(supervisor_pid, within=60)
        if root != state_dir():
            shutil.rmtree(root, ignore_errors=True)
    assert seen, "initdb's password file was never seen"
    assert {file_mode for _, file_mode in seen} == {0o600}, seen


def test_a_server_factory_and_its_socket_are_born_private() -> None:
    # A short lock directory: the factory's socket path must fit in sockaddr_un.
    locks = Path(tempfile.mkdtemp(prefix="ptk-", dir="/tmp"))
    try:
        with umask(0), pytest.MonkeyPatch.context() as env:
            env.setenv("PREFECT_TESTKIT_LOCK_DIR", str(locks / "l"))
            env.setenv("PREFECT_TESTKIT_FACTORY_IDLE_SECONDS", "1")
            with prefect_test_harness(STARTUP_TIMEOUT) as harness:
                assert harness.server_forked
                factory = psutil.Process(harness.server_pid).parent()
                assert factory is not None
                files = sorted(path.suffix for path in (locks / "l" / "factory").iterdir())
                assert files == [".lock", ".log", ".sock"]
                assert_private_tree(locks / "l" / "factory")
            assert wait_until_gone(factory.pid, within=15)
    finally:
        shutil.rmtree(locks, ignore_errors=True)
