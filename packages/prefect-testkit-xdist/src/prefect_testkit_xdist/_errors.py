"""Exception hierarchy shared by every allocator module.

Errors carry what their message names as attributes too, so callers (the harness, say)
can act on or re-raise them without parsing text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._leases import LeaseRecord


class AllocatorError(RuntimeError):
    """Base class for every error raised by prefect-testkit-xdist."""


class PoolExhaustedError(AllocatorError):
    """No resource became free within the configured time; the message names the holders.

    Attributes:
        pool: what was exhausted, e.g. ``ports 8000-8999`` or ``directories named X_N``.
        holders: the live leases that held the pool, as their holders recorded them.
        waited: the seconds waited before giving up.
        port_range: the ports tried, for a port pool; None for directories.
    """

    def __init__(
        self,
        message: str,
        pool: str,
        holders: Sequence[LeaseRecord],
        waited: float,
        port_range: range | None = None,
    ) -> None:
        super().__init__(message)
        self.pool = pool
        self.holders = tuple(holders)
        self.waited = waited
        self.port_range = port_range

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling (multiprocessing, say) rebuilds an exception from its args: keep the data.
        return (
            type(self),
            (str(self), self.pool, self.holders, self.waited, self.port_range),
        )


class LockDirError(AllocatorError):
    """The lock directory cannot be created, or is not safe to use for this user.

    Attributes:
        path: the directory or file that was refused or could not be used.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.path))


class AllocatorConfigError(AllocatorError, ValueError):
    """A parameter or environment variable has a value the allocator cannot use."""


class LockTimeoutError(AllocatorError):
    """A file lock stayed taken by another holder for the whole wait.

    Attributes:
        path: the lock file.
        timeout: the seconds waited.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__(f"{path} stayed locked by another holder for {timeout:g} s")
        self.path = path
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.timeout))
