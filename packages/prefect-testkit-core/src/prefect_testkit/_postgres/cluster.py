"""A throwaway local PostgreSQL cluster, shared by this user's harnesses while any runs.

The first harness that needs it starts a supervisor process (``_pg_supervisor``), which
initialises the cluster if needed, runs ``postgres`` on a leased port and stops it once
no harness has used it for a moment. Each harness holds a shared lock on ``users.lock``
while it uses the cluster; the kernel drops that lock however the harness ends, so a
SIGKILLed run cannot keep the cluster alive, and a killed supervisor takes its postgres
with it (parent-death signal).

Files, under ``<lock dir>/postgres/``: ``start.lock`` (one starter at a time),
``users.lock``, ``cluster.json`` (port, role, password; 0600), ``password`` and
``supervisor.log``. The data directory persists between clusters (so does the migrated
template inside it); root's lives where the unprivileged user that runs postgres can
reach it (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prefect_testkit._errors import HarnessStartupError, allocator_errors
from prefect_testkit._files import hold_lock, make_private_dir, open_private, write_private
from prefect_testkit._launch.process import read_log_tail

# Used here and by the harness, which imports it from this module (hence re-exported).
from prefect_testkit._postgres.binaries import find_binaries
from prefect_testkit._postgres.database import PostgresServer, server_from_url
from prefect_testkit_xdist import lock_dir

CLUSTER_ROLE = "prefect_testkit"
_START_LOCK_SECONDS = 120.0


def state_dir() -> Path:
    with allocator_errors():
        path = lock_dir() / "postgres"
    make_private_dir(path, exist_ok=True)
    return path


def major_version(binaries: Path) -> str:
    output = subprocess.run(
        [binaries / "postgres", "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)", output)
    if match is None:
        raise HarnessStartupError(f"Cannot tell PostgreSQL's version from {output!r}")
    return match.group(1)


def service_user() -> pwd.struct_passwd | None:
    """Who runs postgres: this user, or for root an unprivileged one (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise HarnessStartupError(
        "PostgreSQL refuses to run as root, and neither a 'postgres' nor a 'nobody' user "
        "exists to run the local cluster. Create one, run the tests as another user, or "
        "name a server in PREFECT_TESTKIT_POSTGRES_URL."
    )


def data_root() -> Path:
    """Where the cluster's data directories live (for root: reachable by the service user)."""
    if os.geteuid() != 0:
        return state_dir()
    # Root's lock directory is 0700: postgres could not reach a data directory inside it.
    # This directory only lets others pass through (0711); the data itself is 0700.
    # Named after the state directory: each lock directory has its own cluster.
    digest = hashlib.sha256(str(state_dir()).encode()).hexdigest()[:8]
    path = Path(tempfile.gettempdir()) / f"prefect-testkit-{os.getuid()}-postgres-{digest}"
    path.mkdir(mode=0o711, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != 0:
        raise HarnessStartupError(f"{path} is not root's own directory; remove it and retry")
    path.chmod(0o711)
    return path


@dataclass(frozen=True)
class ClusterState:
    port: int
    password: str
    supervisor_pid: int

    @classmethod
    def read(cls, directory: Path) -> ClusterState | None:
        try:
            raw = json.loads((directory / "cluster.json").read_text())
            return cls(int(raw["port"]), str(raw["password"]), int(raw["supervisor_pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_serving(self) -> bool:
        try:
            os.kill(self.supervisor_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def server(self) -> PostgresServer:
        url = f"postgresql://{CLUSTER_ROLE}:{self.password}@127.0.0.1:{self.port}/postgres"
        return server_from_url(url, "the local PostgreSQL cluster", local_cluster=True)


def _start_supervisor(directory: Path, binaries: Path, timeout: float) -> ClusterState:
    (directory / "cluster.json").unlink(missing_ok=True)
    log = directory / "supervisor.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    with open(open_private(log, os.O_WRONLY | os.O_TRUNC), "wb") as out:
        try:
            launched = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "prefect_testkit._postgres.supervisor",
                    str(directory),
                    str(binaries),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HarnessStartupError(
                f"The local PostgreSQL cluster was not ready after {timeout:g} s; the end of "
                f"{log}:\n{read_log_tail(log)}"
            ) from None
    state = ClusterState.read(directory)
    if launched.returncode != 0 or state is None:
        raise HarnessStartupError(
            f"The local PostgreSQL cluster failed to start (exit {launched.returncode}); "
            f"the end of {log}:\n{read_log_tail(log)}"
        )
    return state


@contextlib.contextmanager
def local_cluster(timeout: float) -> Iterator[PostgresServer]:
    """Use this user's local cluster, starting it if none runs; let it stop when unused."""
    binaries = find_binaries()
    directory = state_dir()
    starting = "another process to start the local PostgreSQL cluster"
    with hold_lock(directory / "start.lock", waiting_for=starting, timeout=_START_LOCK_SECONDS):
        state = ClusterState.read(directory)
        if state is None or not state.is_serving():
            state = _start_supervisor(directory, binaries, max(timeout, 60.0))
        # Taken while the start lock is held: the supervisor, which needs both locks
        # to stop the cluster, cannot stop it between our check and this line.
        users = hold_lock(
            directory / "users.lock", waiting_for="the cluster", timeout=None, shared=True
        )
    with users:  # held while the harness uses the cluster
        yield state.server()


def cluster_password(directory: Path) -> tuple[str, bool]:
    """The cluster role's password, and whether it was made just now.

    Made once: the data directory, where the role lives, outlives each cluster. A new
    password therefore means the data directory must be made anew too.
    """
    path = directory / "password"
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(24)
    # Whole or absent, even after a crash: an empty password file would be read as the
    # password for good.
    write_private(path, password, exclusive=True)
    return password, True
