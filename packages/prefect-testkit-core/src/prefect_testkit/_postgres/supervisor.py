"""``python -m prefect_testkit._postgres.supervisor STATE_DIR BINARIES``: start the local cluster.

Started by the first harness that needs a local PostgreSQL (see ``_pg_cluster``). It
leases a port, initialises the data directory on first use, runs ``postgres`` as its
child, drops databases that harnesses of an earlier cluster left behind, publishes
``cluster.json`` and then waits: once no harness holds ``users.lock`` for
``IDLE_SECONDS``, it stops postgres and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_testkit._files import make_private_dir, write_private
from prefect_testkit._postgres.cluster import (
    CLUSTER_ROLE,
    ClusterState,
    cluster_password,
    data_root,
    major_version,
    service_user,
)
from prefect_testkit._postgres.database import DATABASE_PREFIX, TEMPLATE_PREFIX, drop_database
from prefect_testkit_xdist import HeldFileLock, lease_port, try_lock_file

IDLE_SECONDS = 2.0
_POLL_SECONDS = 0.2
_STOP_SECONDS = 10.0

# A throwaway cluster: durability buys nothing and costs every commit an fsync.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


def _die_with_parent() -> None:
    # Linux: postgres gets SIGQUIT (immediate shutdown) if the supervisor is killed.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


def _run_as_service_user(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    user = service_user()
    ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    return subprocess.Popen(argv, **ids, **kwargs)  # type: ignore[call-overload,no-any-return]


def _prepare_data_directory(binaries: Path, password: str, new_password: bool) -> Path:
    data = data_root() / f"data-{major_version(binaries)}"
    if (data / "PG_VERSION").is_file() and not new_password:
        return data
    user = service_user()
    shutil.rmtree(data, ignore_errors=True)  # half-made by a crash, or for another password
    make_private_dir(data)
    password_file = data.with_name(data.name + ".pw")
    write_private(password_file, password)
    if user is not None:
        os.chown(data, user.pw_uid, user.pw_gid)
        os.chown(password_file, user.pw_uid, user.pw_gid)
    try:
        initdb = _run_as_service_user(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                CLUSTER_ROLE,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
        )
        if initdb.wait() != 0:
            raise SystemExit(f"initdb exited with {initdb.returncode}")
    finally:
        password_file.unlink(missing_ok=True)
    return data


def _wait_until_ready(binaries: Path, port: int, postgres: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if postgres.poll() is not None:
            raise SystemExit(f"postgres exited with {postgres.returncode} while starting")
        ready = subprocess.run(
            [binaries / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    raise SystemExit("postgres was not ready after 60 s")


def _drop_leftovers(state: ClusterState) -> None:
    """A new cluster has no harnesses yet: every harness database in it is a leftover."""
    server = state.server()

    async def drop() -> None:
        conn = await server.connect()
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database")
        finally:
            await conn.close()
        for name in (row["datname"] for row in rows):
            if name.startswith(DATABASE_PREFIX) and not name.startswith(TEMPLATE_PREFIX):
                await drop_database(server, name)
                print(f"dropped leftover database {name}", flush=True)

    run_coro_as_sync(drop())


def _claim_if_idle(directory: Path) -> list[HeldFileLock] | None:
    """Both locks, held, when no harness uses the cluster and none is attaching; else None."""
    claim: list[HeldFileLock] = []
    try:
        for name in ("start.lock", "users.lock"):
            lock = try_lock_file(directory / name)
            if lock is None:
                _release(claim)
                return None
            claim.append(lock)
    except BaseException:
        _release(claim)
        raise
    return claim


def _release(locks: list[HeldFileLock]) -> None:
    for lock in locks:
        lock.release()


def _stop(postgres: subprocess.Popen[bytes]) -> None:
    if postgres.poll() is None:
        postgres.send_signal(signal.SIGINT)  # fast shutdown
        try:
            postgres.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            postgres.kill()
            postgres.wait()


def main(directory: Path, binaries: Path, ready_fd: int) -> int:
    password, new_password = cluster_password(directory)
    data = _prepare_data_directory(binaries, password, new_password)
    port_lease = lease_port()
    port = port_lease.port
    port_lease.take_socket().close()  # postgres binds the port itself; our lock keeps it ours
    settings = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    postgres = _run_as_service_user(
        [str(binaries / "postgres"), "-D", str(data), "-p", str(port), *settings],
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state_file = directory / "cluster.json"
    claim: list[HeldFileLock] | None = None
    try:
        _wait_until_ready(binaries, port, postgres)
        state = ClusterState(port, password, os.getpid())
        _drop_leftovers(state)
        write_private(state_file, json.dumps(dataclasses.asdict(state)))
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        print(f"serving on 127.0.0.1:{port} (postgres pid {postgres.pid}, data {data})", flush=True)
        idle_since: float | None = None
        while postgres.poll() is None:
            time.sleep(_POLL_SECONDS)
            claim = _claim_if_idle(directory)
            if claim is None:
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= IDLE_SECONDS:
                break  # holding both locks: nobody attaches until the cluster is gone
            _release(claim)
            claim = None
        print(f"stopping (postgres exit code so far: {postgres.returncode})", flush=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if ClusterState.read(directory) == ClusterState(port, password, os.getpid()):
                state_file.unlink()
        _stop(postgres)
        port_lease.release()
        _release(claim or [])
    return 0


def daemonize(directory: Path, binaries: Path) -> int:
    """Fork the supervisor off and exit 0 once it serves, 1 if it died first.

    The harness waits for this launcher instead of the supervisor, which outlives it and
    must not be its child: it would leave a zombie, or be killed along with the harness.
    """
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        os.setsid()
        try:
            code = main(directory, binaries, write_fd)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    os.close(write_fd)
    return 0 if os.read(read_fd, 1) == b"1" else 1


if __name__ == "__main__":
    sys.exit(daemonize(Path(sys.argv[1]), Path(sys.argv[2])))
