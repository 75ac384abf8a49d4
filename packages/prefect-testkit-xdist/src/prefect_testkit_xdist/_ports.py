"""Leases on TCP ports, handed out already bound so nobody can take them between choice and use."""

from __future__ import annotations

import errno
import random
import re
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from ._config import PORT_RANGE_ENV, env_value, poll_delays, resolve_timeout
from ._errors import AllocatorConfigError, AllocatorError, PoolExhaustedError
from ._leases import LOCK_SUFFIX, HeldLock, Lease, describe_holders, holder_of
from ._lockdir import PORTS_SUBDIR, bazel_note, lock_subdir

DEFAULT_PORT_RANGE = range(8000, 9000)
LOOPBACK = "127.0.0.1"

_MIN_PORT = 1
_MAX_PORT = 65535
_RANGE_TEXT = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_ALLOWED_FORMS = (
    '"LOW-HIGH" (inclusive, e.g. "8000-8999"), a (low, high) inclusive pair, or an ascending '
    f"range(), within {_MIN_PORT}-{_MAX_PORT}"
)
# The socket class, named apart from `PortLease.socket`, which shadows the module there.
_Socket = socket.socket
# Binding fails with these when the port is taken outside the testkit, or is privileged.
_BIND_SKIP_ERRNOS = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


def _config_error(value: object, source: str | None, problem: str) -> AllocatorConfigError:
    where = f"{source}={value!r}" if source else f"port range {value!r}"
    return AllocatorConfigError(f"{where} {problem}; use {_ALLOWED_FORMS}")


def _parse(value: object, source: str | None) -> range:
    if isinstance(value, range):
        if value.step < 0:
            raise _config_error(value, source, "is reversed (negative step)")
        ports = value
    elif isinstance(value, str):
        match = _RANGE_TEXT.match(value)
        if match is None:
            raise _config_error(value, source, "is not of the form LOW-HIGH")
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise _config_error(value, source, "is reversed (LOW is above HIGH)")
        ports = range(low, high + 1)
    elif isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(
            isinstance(bound, int) and not isinstance(bound, bool) for bound in value
        ):
            raise _config_error(value, source, "is not a pair of two integers")
        low, high = value
        if low > high:
            raise _config_error(value, source, "is reversed (low is above high)")
        ports = range(low, high + 1)
    else:
        raise _config_error(value, source, f"has unsupported type {type(value).__name__}")
    if len(ports) == 0:
        raise _config_error(value, source, "is empty")
    if ports[0] < _MIN_PORT or ports[-1] > _MAX_PORT:
        raise _config_error(value, source, "reaches outside the valid ports")
    return ports


def parse_port_range(value: str | range | tuple[int, int] | list[int]) -> range:
    """Turn "8000-8999", (8000, 8999) or range(8000, 9000) into a validated range."""
    return _parse(value, None)


def configured_port_range() -> range:
    raw = env_value(PORT_RANGE_ENV)
    return DEFAULT_PORT_RANGE if raw is None else _parse(raw, PORT_RANGE_ENV)


class PortLease(Lease):
    """A port held for this process: its lock, and a socket bound to it and listening.

    The lease owns the socket and closes it on `release()`, unless `take_socket()` handed it
    over to the code that starts the port's server (which passes it on, then closes it).
    Either way the lock stays held until `release()`, so the port cannot be leased again
    while the server may still run.
    """

    def __init__(self, port: int, sock: _Socket, held: HeldLock) -> None:
        super().__init__(held)
        self.port = port
        self.host = LOOPBACK
        self._socket = sock
        self._socket_taken = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def socket(self) -> _Socket:
        """The bound socket, still the lease's (to use, not to close); an error once taken."""
        if self._socket_taken:
            raise AllocatorError(f"the socket of port {self.port} was taken from its lease")
        return self._socket

    def take_socket(self) -> _Socket:
        """Hand the bound, listening socket over: the caller closes it, the lease no longer will.

        Allowed once, while the lease is held; the port stays leased until `release()`.
        """
        with self._mutex:
            if self._socket_taken:
                raise AllocatorError(f"the socket of port {self.port} was already taken")
            if self.released:
                raise AllocatorError(f"the lease of port {self.port} was released")
            self._socket_taken = True
            return self._socket

    def release(self) -> None:
        """Close the socket unless it was taken, then give up the port. Safe to call repeatedly."""
        with self._mutex:
            try:
                if not self._socket_taken:
                    self._socket.close()
            finally:
                self._held.release()

    def _resource(self) -> str:
        return f"{self.host}:{self.port}"


def _bind(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets us bind over TIME_WAIT remnants of an earlier holder; unlike
        # SO_REUSEPORT it never lets two live sockets share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.set_inheritable(False)
        sock.bind((LOOPBACK, port))
        sock.listen()
    except OSError as error:
        sock.close()
        if error.errno in _BIND_SKIP_ERRNOS:
            return None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


def _ports_text(ports: range) -> str:
    return f"{ports[0]}-{ports[-1]}" if ports.step == 1 else str(ports)


def _exhausted(
    directory: Path,
    ports: range,
    timeout: float,
    leased: Sequence[int],
    bound_elsewhere: Sequence[int],
) -> PoolExhaustedError:
    lines = [
        f"no free port in {_ports_text(ports)} after waiting {timeout:g}s "
        f"({len(leased)} leased by testkit processes, {len(bound_elsewhere)} in use by others)."
    ]
    holders = [holder_of("port", directory / f"{port}{LOCK_SUFFIX}") for port in leased]
    if holders:
        lines += ["Holders:", describe_holders(holders)]
    if bound_elsewhere:
        shown = ", ".join(str(port) for port in list(bound_elsewhere)[:20])
        lines.append(f"Bound by processes outside the testkit: {shown}")
    lines.append(
        f"Widen the pool with {PORT_RANGE_ENV}=LOW-HIGH, wait longer with "
        "PREFECT_TESTKIT_LEASE_TIMEOUT, or stop the holders (see `prefect-testkit leases`)."
    )
    if (note := bazel_note()) is not None:
        lines.append(f"Note: {note}")
    return PoolExhaustedError(
        "\n".join(lines), f"ports {_ports_text(ports)}", holders, timeout, ports
    )


def lease_port(port_range: range | None = None, *, timeout: float | None = None) -> PortLease:
    """Lease a free port from `port_range`, waiting at most `timeout` seconds for one."""
    ports = configured_port_range() if port_range is None else _parse(port_range, "port_range")
    wait = resolve_timeout(timeout)
    directory = lock_subdir(PORTS_SUBDIR)
    deadline = time.monotonic() + wait
    delays = poll_delays()
    while True:
        # A random starting point spreads concurrent callers over the pool instead of having them
        # all fight over its first port; wrapping around still tries every port once.
        start = random.randrange(len(ports))
        leased: list[int] = []
        bound_elsewhere: list[int] = []
        for offset in range(len(ports)):
            port = ports[(start + offset) % len(ports)]
            held = HeldLock.try_take(directory / f"{port}{LOCK_SUFFIX}")
            if held is None:
                leased.append(port)
                continue
            try:
                sock = _bind(port)
                if sock is None:
                    bound_elsewhere.append(port)
                    held.release()
                    continue
                try:
                    held.write_record("port", f"port {port}", None)
                except BaseException:
                    sock.close()
                    raise
            except BaseException:
                held.release()
                raise
            return PortLease(port, sock, held)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _exhausted(directory, ports, wait, sorted(leased), sorted(bound_elsewhere))
        time.sleep(min(next(delays), remaining))
