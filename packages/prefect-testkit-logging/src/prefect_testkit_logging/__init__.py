"""Call Prefect task and flow bodies without the engine, capture run logs, and read back
what the API stored."""

from prefect_testkit_logging._call import call_fn, missing_context_hint
from prefect_testkit_logging._caplog import caplog_bridge, propagate_run_logs_to
from prefect_testkit_logging._capture import (
    CapturedLog,
    PrefectLogCapture,
    capture_prefect_logs,
)
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
    "missing_context_hint",
    "propagate_run_logs_to",
    "quiet_prefect_loggers",
    "read_run_logs",
]
