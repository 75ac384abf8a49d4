"""Where this package depends on how a Prefect release works inside, not on its public API.

Every difference between the Prefect 3 releases it supports (3.0 to 3.9) is decided here,
by capability rather than by version number, and each check names the releases it serves.
(The harness's own differences live in `prefect_testkit/_prefect.py`; this package cannot
import the harness, which depends on it.)
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect.logging import configuration

#: The loggers behind ``get_run_logger()`` on every Prefect 3 release: ``flow_run_logger``
#: and ``task_run_logger`` in ``prefect/logging/loggers.py`` build their adapters on these.
RUN_LOGGER_NAMES: tuple[str, str] = ("prefect.flow_runs", "prefect.task_runs")

#: The loggers whose ``disabled`` flag makes ``get_run_logger()`` outside a run return a
#: silent logger instead of raising MissingContextError. 3.2+ checks the run loggers
#: themselves; 3.0 and 3.1 check singular names that no record uses. Switching all four
#: serves every release, and the names a release does not check are never logged to.
RUN_LOGGER_SWITCHES: tuple[str, ...] = (*RUN_LOGGER_NAMES, "prefect.flow_run", "prefect.task_run")


def ensure_logging_setup() -> None:
    """Configure Prefect's logging unless this process has done it already."""
    ensure = getattr(configuration, "ensure_logging_setup", None)  # 3.6+
    if ensure is not None:
        ensure()
    elif not configuration.PROCESS_LOGGING_CONFIG:  # 3.0-3.5: the same check, by hand
        configuration.setup_logging()


def is_classmethod(obj: object) -> bool:
    """Whether a task or flow wraps a classmethod (``isclassmethod``: 3.2+; before, never)."""
    return bool(getattr(obj, "isclassmethod", False))


def drain_all(service: Any, timeout: float | None) -> Any:
    """Stop every instance of one of Prefect's background services once its queue is sent.

    Returns a coroutine where an event loop runs in this thread, as Prefect's does.
    ``at_exit=False`` (3.1+) keeps the service usable afterwards; 3.0 has no such flag
    and always leaves it so.
    """
    if "at_exit" in inspect.signature(service.drain_all).parameters:
        return service.drain_all(timeout=timeout, at_exit=False)
    return service.drain_all(timeout=timeout)
