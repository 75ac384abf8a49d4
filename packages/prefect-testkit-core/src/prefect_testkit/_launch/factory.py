"""The server factory: one pre-imported process per user and Prefect install that forks
harness servers, so a harness pays Prefect's multi-second server import once per machine
instead of once per server.

The factory is found through a UNIX socket in the per-user lock directory (mode 0700, so
no other user can reach it) and is kept alive by nothing but its own idle timer. Its life
is marked by a file lock it holds: a free lock means no factory. A harness sends it the
child's environment and three descriptors (the leased listening socket, the parent-death
pipe and the log file); the factory forks, the child serves, and the connection stays
open to report the child's exit status.

The harness that finds no factory takes the lock itself and hands the locked descriptor
and the socket path to the new factory (`LAUNCH_COMMAND`), which forks at once so that
the harness can reap the launcher in milliseconds, then imports Prefect's server.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

from prefect_testkit._launch.wire import (
    LOCK_FD_ENV,
    SOCKET_ENV,
    MessageReader,
    factory_paths,
    send_message,
)
from prefect_testkit.config import read_factory_idle

# Connecting to a UNIX socket is instant unless its listener stopped accepting.
_PROBE_SECONDS = 1.0


class _Factory:
    def __init__(self, listener: socket.socket, lock_fd: int) -> None:
        self._listener = listener
        self._lock_fd = lock_fd
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        self._children: dict[int, socket.socket] = {}
        self._idle_since = time.monotonic()

    def run(self, idle_seconds: float) -> None:
        while self._children or time.monotonic() - self._idle_since < idle_seconds:
            for _key, _ in self._selector.select(timeout=0.1):
                self._accept()
            self._reap()

    def _accept(self) -> None:
        conn, _ = self._listener.accept()
        try:
            conn.settimeout(10)
            request, fds = MessageReader(conn).read(max_fds=3)
            assert isinstance(request, dict)
            try:
                pid = self._fork(request, fds) if _still_awaited(request) else None
            finally:
                for fd in fds:
                    os.close(fd)
            if pid is None:
                conn.close()
                return
            self._reply(conn, pid)
            self._children[pid] = conn
        except EOFError:
            conn.close()  # a factory probing for us (`_answers`), or a harness that gave up
        except Exception as exc:
            print(f"prefect-testkit factory: request failed: {exc!r}", file=sys.stderr, flush=True)
            conn.close()

    def _fork(self, request: dict[str, object], fds: list[int]) -> int:
        pid = os.fork()
        if pid == 0:
            self._become_server(request, fds)  # never returns
        return pid

    @staticmethod
    def _reply(conn: socket.socket, pid: int) -> None:
        try:
            send_message(conn, {"pid": pid})
        except OSError:
            # The harness stopped waiting and spawns its own server on the same socket,
            # with the same nonce: ours would answer its health checks as if it were that one.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise

    def _become_server(self, request: dict[str, object], fds: list[int]) -> None:
        try:
            listen_fd, parent_pipe_fd, log_fd = fds
            self._selector.close()
            self._listener.close()
            os.close(self._lock_fd)  # the lock marks the factory's life, not its children's
            for conn in self._children.values():
                conn.close()
            os.setsid()  # its own process group, which the harness may SIGKILL whole
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            env = request["env"]
            assert isinstance(env, dict)
            os.environ.clear()
            os.environ.update(env)
            from prefect_testkit._prefect import reload_settings_from_environment

            reload_settings_from_environment()
            from prefect_testkit._server.app import serve

            serve(listen_fd, parent_pipe_fd, str(request["nonce"]))
            code = 0
        except BaseException as exc:  # the child must never return into the factory's loop
            print(f"prefect-testkit server (forked): {exc!r}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)

    def _reap(self) -> None:
        for pid, conn in list(self._children.items()):
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
                with contextlib.suppress(OSError):
                    send_message(conn, {"exit": os.waitstatus_to_exitcode(status)})
            conn.close()
            del self._children[pid]
            self._idle_since = time.monotonic()


def _still_awaited(request: dict[str, object]) -> bool:
    """Whether the harness still waits for this request (a stopped factory may read it late).

    The monotonic clock is the system's, not the process's, so the harness's deadline is
    comparable here.
    """
    answer_by = request["answer_by"]
    assert isinstance(answer_by, (int, float))
    return time.monotonic() < answer_by


def main() -> None:
    # Both handed over by the launching harness, which took the lock for this socket.
    lock_fd = int(os.environ.pop(LOCK_FD_ENV))
    os.set_inheritable(lock_fd, False)  # held until this process exits
    socket_path = Path(os.environ.pop(SOCKET_ENV))
    os.setsid()
    # The factory outlives whoever launched it, whose working directory (a pytest tmp
    # dir, say) may be deleted: forked servers must not import relative to it. The
    # launcher started us in "/", so these entries were never the harness's anyway.
    sys.path[:] = [entry for entry in sys.path if entry and os.path.isabs(entry)]
    if factory_paths().socket != socket_path:
        # The harness imported other code than we would serve (from its own working
        # directory, say). Exiting frees the lock, which tells it at once to spawn.
        print(f"prefect-testkit factory: not the code of {socket_path}", file=sys.stderr)
        return

    # The expensive part, paid once: every forked server starts with these imported.
    import prefect.server.api.server  # noqa: F401
    import uvicorn  # noqa: F401

    import prefect_testkit._server.app  # noqa: F401

    _preload()
    listener = _listen(socket_path)
    if listener is None:
        return  # another factory serves this socket: harnesses reach it, not us
    bound = _inode(socket_path)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _Factory(listener, lock_fd).run(read_factory_idle())
    finally:
        _remove_if_ours(socket_path, bound)


# What a server imports only once it starts: uvicorn's protocols, the database driver,
# Alembic (the migration check), the modules of Prefect's services and API clients. Measured
# on 3.9.1: over 300 modules and about a second of every forked server's start. Names that
# a Prefect release lacks are skipped.
_PRELOADED = (
    "aiosqlite",
    "alembic.command",
    "alembic.runtime.migration",
    "anyio._backends._asyncio",
    "prefect.main",
    "prefect.server.api.clients",
    "prefect.server.database.query_components",
    "prefect.server.events.services.actions",
    "prefect.server.events.services.event_logger",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
)


def _preload() -> None:
    """Import, once, what every forked server would import at its start.

    Prefect's integrations (its ``prefect.collections`` entry points) are among them: the
    server loads them to register their blocks. The factory's identity includes the
    installed distributions, so an integration installed later gets a new factory.
    """
    for name in _PRELOADED:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from prefect.plugins import load_prefect_collections

    load_prefect_collections()


def _listen(path: Path) -> socket.socket | None:
    """Our listening socket at ``path``; None when a live factory already answers there.

    We hold the lock, so a socket at ``path`` is normally a dead factory's, to replace.
    But a lock guards one inode only: when a cleaner deletes the lock file, the next
    harness locks a new one while the old factory still serves, and removing its socket
    would leave it serving nobody until it idles out. So we take over a socket only when
    nothing answers on it. A stopped factory still answers here (the kernel queues the
    connection); harnesses time out on it and spawn, which is safe, unlike two factories.
    """
    if _answers(path):
        return None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind() creates the socket file with the umask's mode: narrow it for that call, so the
    # socket is never reachable by others (the factory is single-threaded here).
    previous = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    listener.listen(64)
    return listener


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_SECONDS)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except TimeoutError:
            return True  # a full backlog: a listener that has stopped accepting
    return True


def _inode(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_dev, info.st_ino


def _remove_if_ours(path: Path, bound: tuple[int, int]) -> None:
    """Unlink the socket we bound, but not one that has replaced it.

    A cleaner may have deleted ours while we ran, and a new factory bound the same path:
    that socket is its life line, not ours to remove. No factory replaces our socket while
    we still listen (`_listen` finds us answering), and a bound socket keeps its inode
    number from being reused, so checking, then unlinking, is safe.
    """
    with contextlib.suppress(FileNotFoundError):
        if _inode(path) == bound:
            path.unlink()


if __name__ == "__main__":
    main()
