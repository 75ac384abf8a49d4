"""Exception hierarchy shared by every allocator module."""

from __future__ import annotations


class AllocatorError(RuntimeError):
    """Base class for every error raised by prefect-testkit-xdist."""


class PoolExhaustedError(AllocatorError):
    """No resource became free within the configured time; the message names the holders."""


class LockDirError(AllocatorError):
    """The lock directory cannot be created, or is not safe to use for this user."""


class AllocatorConfigError(AllocatorError, ValueError):
    """A parameter or environment variable has a value the allocator cannot use."""
