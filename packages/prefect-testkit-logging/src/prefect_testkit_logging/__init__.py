"""Call Prefect task and flow bodies without the engine, capture run logs, and read back
what the API stored, after draining Prefect's log and event workers (`drain_workers`).

Importing this package imports no Prefect: each name is loaded on first use, so that the
pytest plugin can import it before a suite has configured Prefect's settings and logging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect_testkit_logging._call import call_fn, missing_context_hint
    from prefect_testkit_logging._caplog import caplog_bridge, propagate_run_logs_to
    from prefect_testkit_logging._capture import (
        CapturedLog,
        PrefectLogCapture,
        capture_prefect_logs,
    )
    from prefect_testkit_logging._drain import drain_workers
    from prefect_testkit_logging._quiet import QuietedPrefectLoggers, quiet_prefect_loggers
    from prefect_testkit_logging._stored import StoredLog, aread_run_logs, read_run_logs

__all__ = [
    "CapturedLog",
    "PrefectLogCapture",
    "QuietedPrefectLoggers",
    "StoredLog",
    "aread_run_logs",
    "call_fn",
    "caplog_bridge",
    "capture_prefect_logs",
    "drain_workers",
    "missing_context_hint",
    "propagate_run_logs_to",
    "quiet_prefect_loggers",
    "read_run_logs",
]

_MODULES = {
    "_call": ("call_fn", "missing_context_hint"),
    "_caplog": ("caplog_bridge", "propagate_run_logs_to"),
    "_capture": ("CapturedLog", "PrefectLogCapture", "capture_prefect_logs"),
    "_drain": ("drain_workers",),
    "_quiet": ("QuietedPrefectLoggers", "quiet_prefect_loggers"),
    "_stored": ("StoredLog", "aread_run_logs", "read_run_logs"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Not cached in this module: pytester's in-process runs drop the modules a run
    # imported, and a cached name would keep a stale copy of Prefect alive beside a new one.
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
