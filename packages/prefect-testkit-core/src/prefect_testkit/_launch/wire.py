"""What the harness and the server factory share: where a factory lives (its identity,
socket, lock and log) and the length-prefixed JSON messages, with descriptors, that they
exchange over its socket. The daemon itself is in `factory.py`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import prefect

from prefect_testkit._files import make_private_dir
from prefect_testkit_xdist import lock_dir

LOCK_FD_ENV = "PREFECT_TESTKIT_FACTORY_LOCK_FD"
SOCKET_ENV = "PREFECT_TESTKIT_FACTORY_SOCKET"
# Detach before the expensive imports: the launching harness waits for this process.
LAUNCH_COMMAND = (
    "import os\n"
    "if os.fork(): os._exit(0)\n"
    "from prefect_testkit._launch.factory import main\n"
    "main()\n"
)
_HEADER = struct.Struct("!I")
# sockaddr_un holds 108 bytes; longer paths (deep Bazel sandboxes) skip the factory.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class FactoryPaths:
    socket: Path
    lock: Path
    log: Path


def factory_paths() -> FactoryPaths:
    """Where this install's factory lives: one per interpreter, virtualenv, Prefect and
    testkit code, however their paths are spelled."""
    key = hashlib.sha256("\0".join(_identity()).encode())
    directory = lock_dir() / "factory"
    make_private_dir(directory, exist_ok=True)
    stem = directory / key.hexdigest()[:16]
    return FactoryPaths(
        stem.with_suffix(".sock"), stem.with_suffix(".lock"), stem.with_suffix(".log")
    )


def _identity() -> list[str]:
    """What makes two processes able to share a factory, with every path resolved.

    Resolved because the same install is reached by many spellings (`../venv/bin/python`,
    a symlinked checkout) and each spelling must find the one factory. The virtualenv's
    prefix is there as well as the interpreter because a venv's bin/python is a symlink
    to the base interpreter: resolved, it is the same for every venv, yet each venv has
    its own packages. The testkit's own files are there so that an edited (editable)
    install never gets servers forked from a factory running the old code, and the
    distributions installed in the environment so that none is served from a factory that
    imported its earlier version, or never loaded it (a Prefect integration installed since).
    """
    parts = [os.path.realpath(sys.prefix), os.path.realpath(sys.executable), prefect.__version__]
    parts += _installed_distributions()
    for module in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        info = module.stat()
        parts += [str(module), str(info.st_mtime_ns), str(info.st_size)]
    return parts


def _installed_distributions() -> list[str]:
    """The metadata directories in the environment's install locations (names carry versions)."""
    locations = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    names: list[str] = []
    for location in sorted(locations):
        with contextlib.suppress(OSError):
            names += sorted(
                name for name in os.listdir(location) if name.endswith((".dist-info", ".egg-info"))
            )
    return names


def usable(paths: FactoryPaths) -> bool:
    return len(os.fsencode(paths.socket)) <= _MAX_SOCKET_PATH


def send_message(conn: socket.socket, payload: object, fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    frame = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(conn, [frame], fds)
    else:
        conn.sendall(frame)


class MessageReader:
    """Length-prefixed JSON messages from a stream socket; bytes past one message are kept."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = bytearray()

    def read(self, max_fds: int = 0) -> tuple[object, list[int]]:
        """The next message, and any descriptors that arrived with its bytes."""
        fds: list[int] = []
        while True:
            if len(self._buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(self._buffer)
                end = _HEADER.size + length
                if len(self._buffer) >= end:
                    message = json.loads(self._buffer[_HEADER.size : end])
                    del self._buffer[:end]
                    return message, fds
            if max_fds:
                chunk, received, _, _ = socket.recv_fds(self._conn, 65536, max_fds)
                fds.extend(received)
            else:
                chunk = self._conn.recv(65536)
            if not chunk:
                raise EOFError("the peer closed the connection")
            self._buffer += chunk
