"""The server child process: spawn it on a leased socket, wait until it is healthy, stop it.

A server that hangs (at startup, or while the harness exits) is asked for its stacks
before it is killed, so that the error says where it was stuck.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import httpx

from prefect_testkit import _route as route
from prefect_testkit._errors import (
    HarnessStartupError,
    HarnessTeardownError,
    HarnessTeardownWarning,
)
from prefect_testkit._files import open_private_append
from prefect_testkit._launch.spawn import ForkedChild, ServerChild, launch
from prefect_testkit._launch.tombstone import Tombstone
from prefect_testkit._server.protocol import (
    FLUSH_PATH,
    IDENTITY_HEADER,
    RESET_PATH,
    STACK_DUMP_END,
    STACK_DUMP_SIGNAL,
)
from prefect_testkit.config import TEARDOWN_TIMEOUT_ENV
from prefect_testkit_xdist import PortLease

# The bound on leaving a harness: the keyword `teardown_timeout`, else this variable.
_POLL_SECONDS = 0.05
_HEALTH_REQUEST_SECONDS = 2.0
_STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 30
# The longest a hung server is given to write its stacks after the signal.
_DUMP_WAIT_SECONDS = 2.0
# Without the end marker (the server's main thread is stuck in C and cannot add its
# asyncio tasks), output unchanged for this long is taken as the whole dump.
_DUMP_SETTLED_SECONDS = 0.3
# After the watchdog has fired, what a step of the exit path still waits on its own:
# the server's dump, then one retry of Prefect's client (2 s back-off, plus jitter)
# against the tombstone, which answers it at once, so that no worker is left retrying.
_AFTER_FIRING_SECONDS = _DUMP_WAIT_SECONDS + 3.0
# Frames shown per thread of the test process: the stuck call is at the top; below
# this many frames lies pytest's machinery.
_THREAD_FRAMES = 30


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


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(server log unreadable: {exc})"


def _await_dump(path: Path, offset: int, child: ServerChild) -> str:
    """What the server writes to its log from ``offset`` on, once its stack dump is done."""
    deadline = time.monotonic() + _DUMP_WAIT_SECONDS
    text, changed_at = "", time.monotonic()
    while time.monotonic() < deadline:
        latest = _read_from(path, offset)
        if STACK_DUMP_END in latest:
            return latest.split(STACK_DUMP_END)[0].rstrip()
        code = child.poll()
        if code is not None:
            return "\n".join(filter(None, [latest.rstrip(), _no_dump_because_exited(code)]))
        if latest != text:
            text, changed_at = latest, time.monotonic()
        elif text and time.monotonic() - changed_at >= _DUMP_SETTLED_SECONDS:
            break
        time.sleep(_POLL_SECONDS)
    if not text:
        return f"(none: the server wrote nothing within {_DUMP_WAIT_SECONDS:g} s of the signal)"
    return text.rstrip() + "\n(its main thread did not come back to list its asyncio tasks)"


def _no_dump_because_exited(code: int) -> str:
    if code == -STACK_DUMP_SIGNAL:
        return (
            "(no stack dump: the server died of the dump signal, so it had not yet "
            "installed its handler: it was still starting Python)"
        )
    return f"(no complete stack dump: the server exited with code {code})"


def _thread_stacks() -> str:
    """Every other thread of this process, by name, with its most recent frames."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    blocks = [
        f"Thread {names.get(ident, ident)} (most recent call last):\n"
        + "".join(traceback.format_stack(frame, limit=_THREAD_FRAMES)).rstrip()
        for ident, frame in sys._current_frames().items()
        if ident != threading.get_ident()
    ]
    return "\n".join(blocks)


def api_url(port: int) -> str:
    """The API URL of a harness's server on ``port``."""
    return f"http://127.0.0.1:{port}/api"


class ServerProcess:
    """A Prefect API server serving a leased, already bound socket in a child process."""

    def __init__(
        self,
        port_lease: PortLease,
        env: Mapping[str, str],
        log_path: Path,
        timeout: float,
        *,
        use_factory: bool,
    ) -> None:
        self.port = port_lease.port
        self.api_url = api_url(self.port)
        self.log_path = log_path
        self._started = time.monotonic()
        self._deadline = self._started + timeout
        self._timeout = timeout
        self._nonce = secrets.token_hex(16)
        self._mutex = threading.Lock()
        self._stopping = False
        self._tombstone: Tombstone | None = None
        # Why the server died, once it has died on its own or was killed (not stopped).
        self.death: str | None = None
        # Seconds from launch to the first healthy answer, once there was one.
        self.startup_seconds: float | None = None
        self._kill_reason: str | None = None
        parent_read, self._parent_write = os.pipe()
        # Ours to close once the child has it (or failed to start): then, if the child dies,
        # clients get "connection refused" at once instead of queueing on a socket that
        # nobody accepts on. The port stays ours: its lease lock is still held.
        listener = port_lease.take_socket()
        try:
            with listener, open_private_append(log_path) as log:
                self._child = launch(
                    env,
                    listener.fileno(),
                    parent_read,
                    log.fileno(),
                    self._nonce,
                    self._deadline,
                    use_factory=use_factory,
                )
        except BaseException:
            os.close(self._parent_write)
            raise
        finally:
            os.close(parent_read)

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
        with route.Client() as client:
            while True:
                if self.returncode is not None:
                    self._fail(f"the server exited with code {self.returncode}", started, describe)
                # Never wait past the deadline on a server that accepts but hangs.
                remaining = max(deadline - time.monotonic(), _POLL_SECONDS)
                try:
                    response = client.get(
                        f"{self.api_url}/health", timeout=min(_HEALTH_REQUEST_SECONDS, remaining)
                    )
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
                        self.startup_seconds = time.monotonic() - started
                        return self.startup_seconds
                    last_problem = f"/api/health answered HTTP {response.status_code}"
                if time.monotonic() >= deadline:
                    self._fail(
                        f"timed out after {timeout:g} s (last: {last_problem})",
                        started,
                        describe,
                        hung=True,
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
            self.death = self._kill_reason or (
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
        with route.Client(timeout=30.0) as client:
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

    def _fail(
        self, reason: str, started: float, describe: Mapping[str, object], *, hung: bool = False
    ) -> NoReturn:
        # Read before the dump, which lands in the same log and would push it out.
        tail = _indent(read_log_tail(self.log_path))
        # A hung server's log is silent about where it hangs: its stacks are not.
        dump = (
            f"\n  the server's stacks at the timeout:\n{_indent(self.stack_dump())}" if hung else ""
        )
        self.stop()
        details = "\n".join(f"  {key}: {value}" for key, value in describe.items())
        raise HarnessStartupError(
            f"The Prefect test server did not start: {reason}.\n"
            f"  port: {self.port}\n"
            f"  exit code: {self.returncode}\n"
            f"  elapsed: {time.monotonic() - started:.2f} s\n"
            f"{details}\n"
            f"  last lines of the server log ({self.log_path}):\n{tail}{dump}"
        )

    def stack_dump(self) -> str:
        """The server's stacks (every thread, then every asyncio task), from its log.

        Waits at most `_DUMP_WAIT_SECONDS` for them; the server keeps running.
        """
        code = self.returncode
        if code is not None:
            return _no_dump_because_exited(code)
        offset = _log_size(self.log_path)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, STACK_DUMP_SIGNAL)
        return _await_dump(self.log_path, offset, self._child)

    def kill(self, reason: str) -> None:
        """SIGKILL the server's session now; requests to it then fail with ``reason``.

        For a server that hangs: whatever waits on it is released at once, and the
        tombstone that replaces it tells the clients why.
        """
        with self._mutex:
            self._kill_reason = reason
        if self._child.poll() is None:
            _kill_session(self.pid)

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
                _kill_session(self._child.pid)
                self._child.wait()


def _kill_session(pid: int) -> None:
    # The whole session: whatever the server started goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


class TeardownWatchdog:
    """Bounds leaving a harness, and says where it was stuck if the bound is hit.

    Entered first in the harness's exit stack, so left last: it reports once everything
    else is cleaned up. `arm` starts the clock as the exit begins; each step runs under
    `step`, so the report can name it. Past the bound the watchdog takes this process's
    and the server's stacks, then kills the server, which releases whatever waits on it.
    """

    def __init__(self, bound: float) -> None:
        self._bound = bound
        self._deadline = 0.0
        self._started = 0.0
        # Completes "it was stuck ...".
        self._step = "before its first step"
        # Held while firing: a step that begins meanwhile waits, so the step named in
        # the report is the one that was stuck, and the server is not stopped mid-dump.
        self._lock = threading.Lock()
        self._left = threading.Event()
        self._thread: threading.Thread | None = None
        self._report: str | None = None

    def __enter__(self) -> TeardownWatchdog:
        return self

    def arm(self, server: ServerProcess) -> None:
        """Start the clock: the harness has begun to exit."""
        self._started = time.monotonic()
        self._deadline = self._started + self._bound
        self._thread = threading.Thread(
            target=self._watch, args=(server,), name="prefect-testkit-teardown", daemon=True
        )
        self._thread.start()

    def step(self, name: str, action: Callable[[], object]) -> None:
        """Run one step of the exit path, under the name a report would give it."""
        with self._lock:
            self._step = name
        try:
            action()
        finally:
            with self._lock:
                self._step = f"in the rest of the exit path, after {name}"

    def time_left(self) -> float:
        """How long a step may wait on its own: never less than the watchdog needs to
        fire and to release what waits on the server, so that it can always report."""
        return max(0.0, self._deadline - time.monotonic()) + _AFTER_FIRING_SECONDS

    def _watch(self, server: ServerProcess) -> None:
        if self._left.wait(self._bound):
            return
        with self._lock:
            step = self._step
            try:
                ours = _thread_stacks()
                theirs = server.stack_dump()
            finally:  # whatever happened above, release what waits on the server
                server.kill(
                    f"The harness killed its Prefect test server (pid {server.pid}, port "
                    f"{server.port}): leaving the harness took longer than {self._bound:g} s; "
                    f"it was stuck {step}."
                )
            self._report = (
                f"Leaving the Prefect test harness took longer than {self._bound:g} s: it was "
                f"stuck {step}. The harness took the stacks below, then killed the server "
                f"(pid {server.pid}, port {server.port}) to release whatever waited on it, "
                "and the rest of the exit ran. If the exit is slow rather than stuck, raise "
                f"the bound (teardown_timeout= or {TEARDOWN_TIMEOUT_ENV}).\n"
                f"  this process's threads at {self._bound:g} s:\n{_indent(ours)}\n"
                f"  the server's stacks ({server.log_path}):\n{_indent(theirs)}"
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._left.set()
        if self._thread is not None:
            self._thread.join()  # at most the firing: the server's dump is bounded
        if self._report is None:
            return
        report = f"{self._report}\n  leaving took {time.monotonic() - self._started:.1f} s in all."
        if exc_type is None:
            raise HarnessTeardownError(report)
        # An exception is already on its way out (the test's own, usually): it is the
        # verdict. Warn beside it, never instead of it, even where warnings are errors.
        with warnings.catch_warnings():
            warnings.simplefilter("always", HarnessTeardownWarning)
            warnings.warn(report, HarnessTeardownWarning, stacklevel=1)
