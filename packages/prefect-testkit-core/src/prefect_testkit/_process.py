"""The server child process: spawn it on a leased socket, wait until it is healthy, stop it."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from prefect_testkit._errors import HarnessStartupError
from prefect_testkit._files import open_private_append
from prefect_testkit._launch import ForkedChild, launch
from prefect_testkit._protocol import FLUSH_PATH, IDENTITY_HEADER, RESET_PATH
from prefect_testkit._tombstone import Tombstone
from prefect_testkit_xdist import PortLease

_POLL_SECONDS = 0.05
_STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 30


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note saying why there are none."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(server log unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(server log is empty)"


class ServerProcess:
    """A Prefect API server serving a leased, already bound socket in a child process."""

    def __init__(
        self, port_lease: PortLease, env: Mapping[str, str], log_path: Path, timeout: float
    ) -> None:
        self.port = port_lease.port
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = log_path
        self._started = time.monotonic()
        self._deadline = self._started + timeout
        self._timeout = timeout
        self._nonce = secrets.token_hex(16)
        self._mutex = threading.Lock()
        self._stopping = False
        self._tombstone: Tombstone | None = None
        # Why the server died, once it has died on its own (not stopped by us).
        self.death: str | None = None
        parent_read, self._parent_write = os.pipe()
        try:
            with open_private_append(log_path) as log:
                self._child = launch(
                    env,
                    port_lease.socket.fileno(),
                    parent_read,
                    log.fileno(),
                    self._nonce,
                    self._deadline,
                )
        except BaseException:
            os.close(self._parent_write)
            raise
        finally:
            os.close(parent_read)
        # The child holds the socket now. Closing our copy means that if the child dies,
        # clients get "connection refused" at once instead of queueing on a socket that
        # nobody accepts on. The port stays ours: its lease lock is still held.
        port_lease.socket.close()

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def forked(self) -> bool:
        """True when the pre-imported server factory forked this server."""
        return isinstance(self._child, ForkedChild)

    @property
    def returncode(self) -> int | None:
        return self._child.poll()

    def wait_until_healthy(self, describe: Mapping[str, object]) -> float:
        """Block until our child answers ``/api/health``; return the seconds since launch."""
        started, deadline, timeout = self._started, self._deadline, self._timeout
        last_problem = "no answer yet"
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while True:
                if self.returncode is not None:
                    self._fail(f"the server exited with code {self.returncode}", started, describe)
                try:
                    response = client.get(f"{self.api_url}/health")
                except httpx.TransportError as exc:
                    last_problem = f"{type(exc).__name__}: {exc}"
                else:
                    if response.headers.get(IDENTITY_HEADER) != self._nonce:
                        # Cannot happen while we hold the socket; checked anyway because
                        # trusting a stranger's answer is the failure this harness exists
                        # to prevent.
                        self._fail("a process other than our server answered", started, describe)
                    if response.status_code == 200:
                        self._watch_for_death()
                        return time.monotonic() - started
                    last_problem = f"/api/health answered HTTP {response.status_code}"
                if time.monotonic() >= deadline:
                    self._fail(
                        f"timed out after {timeout:g} s (last: {last_problem})", started, describe
                    )
                time.sleep(_POLL_SECONDS)

    def _watch_for_death(self) -> None:
        threading.Thread(
            target=self._on_death, name=f"watch-server-{self.pid}", daemon=True
        ).start()

    def _on_death(self) -> None:
        code = self._child.wait()
        with self._mutex:
            if self._stopping:
                return
            self.death = (
                f"The Prefect test server died during the test: pid {self.pid}, port "
                f"{self.port}, exit code {code}. Last lines of its log ({self.log_path}):\n"
                + _indent(read_log_tail(self.log_path))
            )
            with contextlib.suppress(OSError):  # the port is ours, but be safe
                self._tombstone = Tombstone(self.port, self.death)

    def empty_database(self) -> None:
        """Delete every row a test can create, inside the running server."""
        self._call(RESET_PATH, "empty its database")

    def wait_for_quiet_message_bus(self) -> None:
        """Return once the server has handled every event and log it has received."""
        self._call(FLUSH_PATH, "finish recording what it received")

    def _call(self, path: str, what: str) -> None:
        with httpx.Client(trust_env=False, timeout=30.0) as client:
            response = client.post(
                f"http://127.0.0.1:{self.port}{path}", headers={IDENTITY_HEADER: self._nonce}
            )
        if response.status_code != 200:
            raise RuntimeError(
                f"The Prefect test server on port {self.port} could not {what}: "
                f"HTTP {response.status_code} {response.text}\n"
                f"  last lines of the server log ({self.log_path}):\n"
                + _indent(read_log_tail(self.log_path))
            )

    def _fail(self, reason: str, started: float, describe: Mapping[str, object]) -> None:
        self.stop()
        details = "\n".join(f"  {key}: {value}" for key, value in describe.items())
        raise HarnessStartupError(
            f"The Prefect test server did not start: {reason}.\n"
            f"  port: {self.port}\n"
            f"  exit code: {self.returncode}\n"
            f"  elapsed: {time.monotonic() - started:.2f} s\n"
            f"{details}\n"
            f"  last lines of the server log ({self.log_path}):\n"
            + _indent(read_log_tail(self.log_path))
        )

    def stop(self) -> None:
        """Terminate the child (SIGKILL after a grace period) and reap it. Idempotent."""
        with self._mutex:
            self._stopping = True
            if self._tombstone is not None:
                self._tombstone.close()
                self._tombstone = None
        if self._parent_write >= 0:
            os.close(self._parent_write)
            self._parent_write = -1
        if self._child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._child.pid, signal.SIGTERM)
            try:
                self._child.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                # The whole session: whatever the server started goes with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._child.pid, signal.SIGKILL)
                self._child.wait()


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
