from __future__ import annotations

import logging
from uuid import UUID

from prefect_testkit_logging._prefect import RUN_LOGGER_NAMES


def coerce_level(level: object, *, argument: str = "level") -> int:
    """Turn ``20`` or ``"INFO"`` (any case) into a logging level number."""
    # bool is an int subclass; ``level=True`` is always a mistake, never a level.
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise TypeError(
            f"{argument} must be a logging level as an int (e.g. logging.INFO) or a name "
            f"(e.g. 'INFO'), got {type(level).__name__}: {level!r}"
        )
    if isinstance(level, int):
        return level
    # getLevelName maps a registered name back to its number (custom levels included);
    # getLevelNamesMapping() would be cleaner but needs Python 3.11.
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(
            f"{argument}={level!r} is not a logging level name; expected e.g. "
            "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"
        )
    return number


def coerce_uuid(value: object, *, argument: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise ValueError(f"{argument}={value!r} is not a valid UUID string") from None
    hint = ""
    if hasattr(value, "state_details") or hasattr(value, "id"):
        hint = " (for a State pass state.state_details.flow_run_id; for a FlowRun pass flow_run.id)"
    raise TypeError(
        f"{argument} must be a UUID or a UUID string, got {type(value).__name__}: {value!r}{hint}"
    )


def record_uuid(value: object) -> UUID | None:
    """Read a run id that Prefect put on a log record (a str, a UUID, None or '<unknown>')."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return None
    return None


def run_log_entry_loggers() -> list[logging.Logger]:
    """The loggers a handler must sit on to see every run log record exactly once.

    A record climbs from its logger towards the root and stops after the first logger with
    ``propagate=False``. Sitting on the two run loggers sees everything from them and their
    children, except children that stop propagation themselves; sitting on those too adds
    exactly the records that would otherwise be missed, with no record seen twice.
    """
    loggers = [logging.getLogger(name) for name in RUN_LOGGER_NAMES]
    prefixes = tuple(f"{name}." for name in RUN_LOGGER_NAMES)
    # Snapshot: other threads may create loggers while we iterate.
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith(prefixes)
            and isinstance(logger, logging.Logger)
            and not logger.propagate
        ):
            loggers.append(logger)
    return loggers
