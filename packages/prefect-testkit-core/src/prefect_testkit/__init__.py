"""prefect-testkit core: a fast, leak-free, explanatory drop-in for Prefect's test harness."""

from prefect_testkit._errors import HarnessConfigError, HarnessStartupError
from prefect_testkit._harness import DATABASE_BACKENDS, HarnessHandle, prefect_test_harness

__all__ = [
    "DATABASE_BACKENDS",
    "HarnessConfigError",
    "HarnessHandle",
    "HarnessStartupError",
    "prefect_test_harness",
]
