"""Starting the server child: forked by the factory when one can serve, spawned otherwise."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from prefect_testkit._errors import allocator_errors
from prefect_testkit._files import open_private_append
from prefect_testkit._launch.wire import (
    LAUNCH_COMMAND,
    LOCK_FD_ENV,
    SOCKET_ENV,
    FactoryPaths,
    MessageReader,
    factory_paths,
    send_message,
    usable,
)
from prefect_testkit._server.protocol import LISTEN_FD_ENV, NONCE_ENV, PARENT_PIPE_FD_ENV
from prefect_testkit_xdist import is_file_locked, try_lock_file

# Exit status reported when the factory vanished before it could tell us the real one.
UNKNOWN_EXIT = 255
# A running factory answers (accepts, reads the request, forks, replies) in milliseconds;
# one that has not within this bound is stopped or wedged, and the harness spawns its
# server instead, with the rest of the startup time. Spawning costs a few seconds of
# imports, so the bound is a few seconds too, and at most a quarter of the startup
# timeout so that a short timeout keeps most of its time for the spawn.
ANSWER_SECONDS = 5.0
_ANSWER_SHARE = 0.25
# A factory still starting pays the same imports as a spawn, so waiting for it is no
# loss; but if it never comes up, the spawn must be left as much time as the factory had.
_START_SHARE = 0.5


class ServerChild(Protocol):
    """What the harness needs of its server process, however it was started."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ForkedChild:
    """A server forked by the factory; its exit status arrives over the factory connection."""

    def __init__(self, conn: socket.socket, reader: MessageReader, pid: int) -> None:
        self.pid = pid
        self._conn = conn
        self._reader = reader
        self._returncode: int | None = None
        # The harness's death watcher waits while the harness polls: one reader at a time.
        self._mutex = threading.Lock()

    def poll(self) -> int | None:
        self._read(timeout=0)
        return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._returncode is None:
            remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if remaining <= 0:
                raise subprocess.TimeoutExpired(f"server pid {self.pid}", timeout or 0)
            self._read(timeout=remaining)
        return self._returncode

    def _read(self, timeout: float) -> None:
        with self._mutex:
            self._read_locked(timeout)

    def _read_locked(self, timeout: float) -> None:
        if self._returncode is not None:
            return
        readable, _, _ = select.select([self._conn], [], [], timeout)
        if not readable:
            return
        try:
            message, _ = self._reader.read()
        except (EOFError, OSError):
            # The factory died first; the server may still run (it is our child no longer).
            if not _alive(self.pid):
                self._returncode = UNKNOWN_EXIT
                self._conn.close()
            return
        if isinstance(message, dict) and "exit" in message:
            self._returncode = int(message["exit"])
            self._conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def launch(
    env: Mapping[str, str],
    listen_fd: int,
    parent_pipe_fd: int,
    log_fd: int,
    nonce: str,
    deadline: float,
    *,
    use_factory: bool,
) -> ServerChild:
    """Start a server child, from the factory when ``use_factory`` and possible."""
    if use_factory and sys.platform != "win32":
        paths = factory_paths()
        if usable(paths):
            forked = _fork_from_factory(
                paths, env, [listen_fd, parent_pipe_fd, log_fd], nonce, deadline
            )
            if forked is not None:
                return forked
    return subprocess.Popen(
        [sys.executable, "-m", "prefect_testkit._server"],
        env={
            **env,
            LISTEN_FD_ENV: str(listen_fd),
            PARENT_PIPE_FD_ENV: str(parent_pipe_fd),
            NONCE_ENV: nonce,
        },
        pass_fds=(listen_fd, parent_pipe_fd),
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        # Ctrl-C in a terminal must reach the test process only, so that it can drain
        # logs into a still running server and then stop it.
        start_new_session=True,
    )


def _fork_from_factory(
    paths: FactoryPaths, env: Mapping[str, str], fds: list[int], nonce: str, deadline: float
) -> ForkedChild | None:
    """Ask the factory for a server, starting the factory first if none runs.

    None means the factory could not serve in time (it failed to start, died, or did not
    answer): the caller then spawns the server itself, so the factory is only ever a
    speed-up.
    """
    left = deadline - time.monotonic()
    answer_within = min(ANSWER_SECONDS, left * _ANSWER_SHARE)
    connected = _connect(paths, answer_within, time.monotonic() + left * _START_SHARE)
    if connected is None:
        return None
    conn, answer_by = connected
    try:
        return _request(conn, answer_by, env, fds, nonce)
    except (OSError, EOFError):  # TimeoutError included: the factory did not answer
        conn.close()
        return None


def _connect(
    paths: FactoryPaths, answer_within: float, start_by: float
) -> tuple[socket.socket, float] | None:
    """A connection to the factory, and when its answer is due; None when none comes up
    in time, or the one there no longer accepts."""
    started_one = False
    while True:
        answer_by = time.monotonic() + answer_within
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(answer_within)  # blocks only when the factory stopped accepting
        try:
            conn.connect(str(paths.socket))
            return conn, answer_by
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()  # no factory yet, or a dead one's socket
        except OSError:
            conn.close()
            return None
        if not started_one:
            start_factory(paths)
            started_one = True
        elif not _factory_alive(paths) or time.monotonic() >= start_by:
            return None
        time.sleep(0.02)


def _request(
    conn: socket.socket, answer_by: float, env: Mapping[str, str], fds: list[int], nonce: str
) -> ForkedChild:
    """Send the request and read the forked server's pid, both by ``answer_by``."""
    conn.settimeout(_until(answer_by))
    request = {"env": dict(env), "nonce": nonce, "answer_by": answer_by}
    send_message(conn, request, fds)
    conn.settimeout(_until(answer_by))
    reader = MessageReader(conn)
    reply, _ = reader.read()
    conn.settimeout(None)
    assert isinstance(reply, dict)
    return ForkedChild(conn, reader, int(reply["pid"]))


def _until(moment: float) -> float:
    return max(0.001, moment - time.monotonic())  # 0 would make the socket non-blocking


def start_factory(paths: FactoryPaths) -> None:
    """Start a factory unless one runs; the lock passes to it already taken."""
    with allocator_errors():
        lock = try_lock_file(paths.lock)
    if lock is None:
        return  # a factory runs or is starting
    with lock:  # closes our copy at the end; the factory's copy keeps the lock
        with open_private_append(paths.log) as log:
            launcher = subprocess.Popen(
                [sys.executable, "-c", LAUNCH_COMMAND],
                # The socket is named, not recomputed by the factory, so that the two
                # cannot disagree about where the lock's owner listens.
                env={**os.environ, LOCK_FD_ENV: str(lock.fd), SOCKET_ENV: str(paths.socket)},
                pass_fds=(lock.fd,),
                # The harness's directory may go away, and imports must not depend on it.
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        launcher.wait()


def _factory_alive(paths: FactoryPaths) -> bool:
    with allocator_errors():
        return is_file_locked(paths.lock)
