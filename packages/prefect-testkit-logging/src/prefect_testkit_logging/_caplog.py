from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prefect_testkit_logging._prefect import ensure_logging_setup
from prefect_testkit_logging._util import run_log_entry_loggers

HandlerSource = Callable[[], Iterable[logging.Handler]]


def _reaches(start: logging.Logger, handler: logging.Handler) -> bool:
    """Would a record handled at ``start`` reach ``handler`` by ordinary propagation?"""
    logger: logging.Logger | None = start
    while logger is not None:
        if handler in logger.handlers:
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


# All active bridges share one handler per run logger, fed from one list of sources. Two
# bridges to the same handler (the plugin's autouse one and a test's own, say) must still
# deliver each record once, which separate handlers could not coordinate.
_lock = threading.Lock()
_active_sources: list[HandlerSource] = []
_installed: dict[str, tuple[logging.Logger, _BridgeHandler]] = {}


class _BridgeHandler(logging.Handler):
    def __init__(self, entry: logging.Logger) -> None:
        super().__init__(logging.NOTSET)
        self._entry = entry

    def handle(self, record: logging.LogRecord) -> bool:
        # Skip Handler.handle's lock: forwarding takes each target's own lock, and holding
        # ours as well would only serialise unrelated threads.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        seen: set[int] = set()
        for source in tuple(_active_sources):
            for target in source():
                if id(target) in seen:
                    continue
                seen.add(id(target))
                # The same test Logger.callHandlers applies; and a target that propagation
                # already reaches must not get the record twice.
                if record.levelno >= target.level and not _reaches(self._entry, target):
                    target.handle(record)


def _as_source(target: logging.Handler | HandlerSource) -> HandlerSource:
    if isinstance(target, logging.Handler):
        handler = target
        return lambda: (handler,)
    if callable(target):
        return target
    raise TypeError(
        "propagate_run_logs_to() takes logging.Handler instances or zero-argument callables "
        f"returning handlers, got {type(target).__name__}: {target!r}"
    )


@contextmanager
def propagate_run_logs_to(*targets: logging.Handler | HandlerSource) -> Iterator[None]:
    """Deliver flow and task run log records to ``targets`` whatever the propagation settings.

    Each target is a handler, or a zero-argument callable returning handlers that is asked
    again for every record (for handlers that are swapped while the block runs, like
    pytest's per-phase ones). A record goes to a target only if ordinary propagation from
    the run loggers would not deliver it there already, and only if its level passes the
    target's level. Blocks may nest or overlap: a handler named by several active blocks
    still gets each record once. Propagation flags are left untouched, so Prefect's console
    output does not change.

    Records logged while the run logger is disabled (``disable_run_logger()``,
    ``call_fn()``) are dropped before any handler runs and cannot be forwarded.
    """
    sources = [_as_source(target) for target in targets]
    ensure_logging_setup()
    with _lock:
        _active_sources.extend(sources)
        # Re-checked on every entry so a child logger that stopped propagating since the
        # first bridge was installed is covered too.
        for logger in run_log_entry_loggers():
            if logger.name not in _installed:
                bridge = _BridgeHandler(logger)
                logger.addHandler(bridge)
                _installed[logger.name] = (logger, bridge)
    try:
        yield
    finally:
        with _lock:
            for source in sources:
                # Remove this block's own entries (by identity), not equal ones of others.
                for index, active in enumerate(_active_sources):
                    if active is source:
                        del _active_sources[index]
                        break
            if not _active_sources:
                for logger, bridge in _installed.values():
                    logger.removeHandler(bridge)
                _installed.clear()


def _pytest_handlers() -> list[logging.Handler]:
    # pytest's logging plugin installs its handlers on the root logger for each test phase
    # (setup, call, teardown): caplog's, the "Captured log" report's, and the live-log and
    # log-file ones. Matching by module keeps this package free of a pytest import.
    return [
        handler
        for handler in logging.getLogger().handlers
        if type(handler).__module__ == "_pytest.logging"
    ]


@contextmanager
def caplog_bridge() -> Iterator[None]:
    """Make pytest's ``caplog`` (and the "Captured log" report sections) see run logs.

    By default Prefect's run loggers propagate to the root logger, where pytest listens,
    but a logging config may turn propagation off (Prefect's own test suite forces it back
    on with an autouse fixture). Inside this block every flow and task run record reaches
    the handlers pytest's logging plugin has on the root logger at that moment, exactly
    once. Enter it in a fixture or hook that spans the test; it follows pytest's handler
    changes between setup, call and teardown.

    Limitation: nothing is captured while the run logger is disabled (``call_fn()``,
    ``disable_run_logger()``): use ``capture_prefect_logs()`` / the ``prefect_logs``
    fixture, whose ``run_logger_disabled_during_capture`` says when that happened.
    """
    with propagate_run_logs_to(_pytest_handlers):
        yield
