from __future__ import annotations

import logging
from types import TracebackType

from prefect_testkit_logging._prefect import RUN_LOGGER_NAMES, ensure_logging_setup
from prefect_testkit_logging._util import coerce_level

# Loggers whose records are user output rather than Prefect chatter: the run loggers (and
# their children) and prefect.extra, which Prefect uses to forward PREFECT_LOGGING_EXTRA_LOGGERS.
_KEEP_PREFIXES = (*RUN_LOGGER_NAMES, "prefect.extra")
# Besides the `prefect` tree, the in-process API server logs through these.
_OTHER_ROOTS = ("uvicorn", "fastapi")


def _kept(name: str) -> bool:
    return any(name == keep or name.startswith(f"{keep}.") for keep in _KEEP_PREFIXES)


class QuietedPrefectLoggers:
    """Handle returned by :func:`quiet_prefect_loggers`: a context manager, or keep it and
    call :meth:`restore` (or never, to stay quiet for the whole session)."""

    def __init__(self, changed: dict[str, tuple[int, int]]) -> None:
        # logger name -> (level before, level we set)
        self._changed = changed
        self._restored = False

    @property
    def changed_loggers(self) -> dict[str, int]:
        """The loggers whose level was changed, with the level each had before."""
        return {name: before for name, (before, _set) in self._changed.items()}

    def restore(self) -> None:
        """Put back the levels changed, unless something changed them again since.

        Calling it again does nothing."""
        if self._restored:
            return
        self._restored = True
        for name, (before, ours) in reversed(list(self._changed.items())):
            logger = logging.getLogger(name)
            if logger.level == ours:
                logger.setLevel(before)

    def __enter__(self) -> QuietedPrefectLoggers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def quiet_prefect_loggers(level: int | str = logging.WARNING) -> QuietedPrefectLoggers:
    """Silence Prefect's own loggers below ``level`` without touching run logs.

    Takes effect immediately, so it works both as ``with quiet_prefect_loggers(): ...`` and
    as a plain call (e.g. in ``conftest.py``) that lasts until ``.restore()``. Raises the
    ``prefect`` logger and any ``prefect.*`` / ``uvicorn`` / ``fastapi`` logger with a lower
    explicit level to ``level``: that covers "Starting temporary server",
    "Stopping temporary server", client and engine chatter. The run loggers
    (``prefect.flow_runs``, ``prefect.task_runs``) get their current effective level pinned,
    so they keep logging as before even though they usually inherit from ``prefect``;
    ``prefect.extra`` is left alone.
    """
    target = coerce_level(level)
    # A later first-time dictConfig would reset every level set here.
    ensure_logging_setup()
    changed: dict[str, tuple[int, int]] = {}

    def set_level(logger: logging.Logger, new: int) -> None:
        if logger.name not in changed:
            changed[logger.name] = (logger.level, new)
        else:
            changed[logger.name] = (changed[logger.name][0], new)
        logger.setLevel(new)

    # Pin first: their effective level still comes from `prefect` at this point.
    for name in RUN_LOGGER_NAMES:
        run_logger = logging.getLogger(name)
        if run_logger.level == logging.NOTSET:
            set_level(run_logger, run_logger.getEffectiveLevel())

    prefect_logger = logging.getLogger("prefect")
    if prefect_logger.level == logging.NOTSET or prefect_logger.level < target:
        set_level(prefect_logger, target)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or _kept(name):
            continue
        in_scope = name.startswith("prefect.") or any(
            name == root or name.startswith(f"{root}.") for root in _OTHER_ROOTS
        )
        # NOTSET loggers inherit the new level; only explicit lower levels need raising.
        if in_scope and logging.NOTSET < logger.level < target:
            set_level(logger, target)
    return QuietedPrefectLoggers(changed)
