"""Environment settings and their validation."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator

from ._errors import AllocatorConfigError

LOCK_DIR_ENV = "PREFECT_TESTKIT_LOCK_DIR"
PORT_RANGE_ENV = "PREFECT_TESTKIT_PORT_RANGE"
LEASE_TIMEOUT_ENV = "PREFECT_TESTKIT_LEASE_TIMEOUT"
ALLOW_NETWORK_FS_ENV = "PREFECT_TESTKIT_ALLOW_NETWORK_FS"

DEFAULT_LEASE_TIMEOUT = 30.0
# Between scans of an exhausted pool: start short so a resource freed a moment later is picked up
# quickly, then back off so a dozen waiting workers do not burn the CPU the holders need. The
# jitter keeps waiters that started together from scanning in lockstep.
_FIRST_POLL_DELAY = 0.005
_MAX_POLL_DELAY = 0.2


def poll_delays() -> Iterator[float]:
    delay = _FIRST_POLL_DELAY
    while True:
        yield delay * random.uniform(0.5, 1.5)
        delay = min(delay * 2, _MAX_POLL_DELAY)


def env_value(name: str) -> str | None:
    """Return the variable's value, treating unset and blank alike so `VAR= cmd` means default."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def resolve_timeout(timeout: float | None) -> float:
    """Validate `timeout`, or read it from the environment when it is None."""
    if timeout is None:
        raw = env_value(LEASE_TIMEOUT_ENV)
        if raw is None:
            return DEFAULT_LEASE_TIMEOUT
        source = f"{LEASE_TIMEOUT_ENV}={raw!r}"
        try:
            value = float(raw)
        except ValueError:
            raise AllocatorConfigError(
                f"{source} is not a number; set it to a number of seconds >= 0, e.g. 30"
            ) from None
    else:
        source = f"timeout={timeout!r}"
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise AllocatorConfigError(
                f"{source} is not a number; pass a number of seconds >= 0, or None for the default"
            )
        value = float(timeout)
    if not math.isfinite(value) or value < 0:
        raise AllocatorConfigError(
            f"{source} is not allowed; use a finite number of seconds >= 0 "
            "(waits are always bounded, 0 means a single attempt)"
        )
    return value
