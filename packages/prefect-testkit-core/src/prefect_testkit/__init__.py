"""prefect-testkit core: a fast, leak-free, explanatory drop-in for Prefect's test harness.

Importing this package imports no Prefect: the harness and its handle are loaded on first
use, so that the pytest plugin can import it before a suite's conftest or ini settings
have set ``PREFECT_*`` variables, and before pytest captures output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# First, so that it keeps httpx's methods before a test can start an HTTP mock.
from prefect_testkit import _route  # noqa: F401
from prefect_testkit._errors import (
    HarnessConfigError,
    HarnessStartupError,
    HarnessTeardownError,
    HarnessTeardownWarning,
    LeasePoolExhaustedError,
    LockDirectoryError,
    OtherAPIError,
    PrefectCompatibilityWarning,
)
from prefect_testkit.config import DATABASE_BACKENDS, HarnessConfig

if TYPE_CHECKING:
    from prefect_testkit._harness import HarnessHandle, prefect_test_harness

__all__ = [
    "DATABASE_BACKENDS",
    "HarnessConfig",
    "HarnessConfigError",
    "HarnessHandle",
    "HarnessStartupError",
    "HarnessTeardownError",
    "HarnessTeardownWarning",
    "LeasePoolExhaustedError",
    "LockDirectoryError",
    "OtherAPIError",
    "PrefectCompatibilityWarning",
    "prefect_test_harness",
]

# Names whose modules import Prefect: resolved by __getattr__ on first access.
_LAZY = {"HarnessHandle": "_harness", "prefect_test_harness": "_harness"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Not cached in this module: pytester's in-process runs drop the modules a run
    # imported, and a cached name would keep a stale copy of Prefect alive beside a new one.
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
