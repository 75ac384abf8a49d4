"""Exceptions raised by the harness.

Every failure to enter a harness is a `HarnessConfigError` (fix a value) or a
`HarnessStartupError` (something on the machine is in the way). Errors of the lease
allocator below us are re-raised as these, with their data kept as attributes and the
original chained, so that callers never need to know that package's classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prefect_testkit_xdist import (
    AllocatorConfigError,
    AllocatorError,
    LockDirError,
    PoolExhaustedError,
)


class HarnessConfigError(ValueError):
    """A harness parameter or environment variable has a value the harness cannot use."""


class HarnessStartupError(RuntimeError):
    """The test server did not become healthy; the message says where and why."""


class HarnessTeardownError(RuntimeError):
    """Leaving the harness overran its bound; the message says where it was stuck.

    Raised only when the ``with`` body did not raise: otherwise that exception leaves
    the harness unchanged and this report comes as a `HarnessTeardownWarning`.
    """


class HarnessTeardownWarning(RuntimeWarning):
    """Leaving the harness overran its bound while the body's exception propagated."""


class OtherAPIError(RuntimeError):
    """A Prefect client was created for another API while a harness was active.

    Inside a harness, test traffic goes to the harness's server only: a client for Prefect
    Cloud or a developer's server would read or write real data. The message names both
    URLs and the opt-out (``PREFECT_TESTKIT_ALLOW_OTHER_APIS=true``).

    Attributes:
        url: the API the client was created for.
        harness_url: the harness's API.
    """

    def __init__(self, url: str, harness_url: str) -> None:
        from prefect_testkit.config import ALLOW_OTHER_APIS_ENV

        super().__init__(
            f"A Prefect client was created for {url} while the harness serves {harness_url}: "
            "inside a harness, Prefect clients reach only its API, so that a test cannot "
            "touch a real server. Let the code read PREFECT_API_URL (the harness sets it), "
            f"or set {ALLOW_OTHER_APIS_ENV}=true to allow other APIs."
        )
        self.url = url
        self.harness_url = harness_url

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.url, self.harness_url)


class PrefectCompatibilityWarning(UserWarning):
    """An installed library is outside the range this Prefect release was tested with.

    Old Prefect releases fail with today's web libraries (an HTTP 422 or 500 from the test
    server, an import error); the message names each library, its range and the install
    command of the working set (the ``prefect-3-N`` extra of prefect-testkit-core).
    """


class LockDirectoryError(LockDirError, HarnessConfigError):
    """The lock directory (``PREFECT_TESTKIT_LOCK_DIR``) is unusable or unsafe.

    The allocator's error with the harness's type (listed first, so that its data and
    pickling are the allocator's), and ``except HarnessConfigError`` catches it.

    Attributes:
        path: the directory or file that was refused: the lock directory, its parent,
            a subdirectory or a lock file in it.
    """


class LeasePoolExhaustedError(HarnessStartupError, PoolExhaustedError):
    """No port or harness directory became free in time; the message names the holders.

    The allocator's error with the harness's type: its data and pickling are the
    allocator's, and ``except HarnessStartupError`` catches it.

    Attributes:
        pool: what was exhausted, e.g. ``ports 8000-8999``.
        port_range: the ports tried, for a port pool; None for the directory pool.
        holders: the live leases holding the pool (pid, command line, age, worker).
        waited: the seconds waited (``PREFECT_TESTKIT_LEASE_TIMEOUT``).
    """


# Tracebacks and reprs name the import path users have, not this private module.
for _public in (
    HarnessConfigError,
    HarnessStartupError,
    HarnessTeardownError,
    HarnessTeardownWarning,
    LockDirectoryError,
    LeasePoolExhaustedError,
    OtherAPIError,
    PrefectCompatibilityWarning,
):
    _public.__module__ = "prefect_testkit"


@contextlib.contextmanager
def allocator_errors() -> Iterator[None]:
    """Re-raise the lease allocator's errors as the harness's own, chained to the original."""
    try:
        yield
    except (LeasePoolExhaustedError, LockDirectoryError):
        raise  # already the harness's own (a nested block): keep the one chain
    except PoolExhaustedError as exc:
        raise LeasePoolExhaustedError(
            str(exc), exc.pool, exc.holders, exc.waited, exc.port_range
        ) from exc
    except LockDirError as exc:
        raise LockDirectoryError(str(exc), exc.path) from exc
    except AllocatorConfigError as exc:
        raise HarnessConfigError(str(exc)) from exc
    except AllocatorError as exc:
        raise HarnessStartupError(str(exc)) from exc
