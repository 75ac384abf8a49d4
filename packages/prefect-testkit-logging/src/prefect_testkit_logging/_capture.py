from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from prefect_testkit_logging import _watch
from prefect_testkit_logging._prefect import RUN_LOGGER_NAMES, ensure_logging_setup
from prefect_testkit_logging._util import (
    coerce_level,
    coerce_uuid,
    record_uuid,
    run_log_entry_loggers,
)

DISABLED_NOTE = (
    "Note: the Prefect run logger was disabled during this capture (by call_fn(), "
    "prefect.logging.disable_run_logger() or `logger.disabled = True`). Anything logged "
    "through get_run_logger() while it was disabled is dropped by the logging module before "
    "any handler sees it, so neither this capture nor caplog can contain it. To assert on "
    "those lines, run the task or flow for real (inside a flow, against the test server) "
    "instead of calling its body; to test the body alone, assert on its return value."
)


@dataclass(frozen=True)
class CapturedLog:
    """One record emitted by a flow or task run logger during a capture."""

    logger_name: str
    level: int
    message: str
    flow_run_id: UUID | None
    task_run_id: UUID | None
    created: float
    thread_name: str | None
    record: logging.LogRecord = field(repr=False, compare=False)

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)

    def __str__(self) -> str:
        flow_run = self.flow_run_id or "-"
        task_run = self.task_run_id or "-"
        return (
            f"{self.level_name:<8} {self.logger_name} flow_run={flow_run} task_run={task_run}: "
            f"{self.message}"
        )


class PrefectLogCapture:
    """Records collected by :func:`capture_prefect_logs`; filter and assert on them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CapturedLog] = []
        self._disabled_loggers: set[str] = set()
        self._active = True

    @property
    def records(self) -> list[CapturedLog]:
        """Everything captured so far, in the order it was logged (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def run_logger_disabled_during_capture(self) -> bool:
        """True if a run logger was disabled at any moment while the capture was active.

        Records logged while it was disabled were dropped before any handler ran.
        """
        return bool(self._disabled_loggers)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[CapturedLog]:
        return iter(self.records)

    def clear(self) -> None:
        """Forget the records captured so far (the disabled flag is kept)."""
        with self._lock:
            self._records.clear()

    def records_for(self, flow_run_id: UUID | str) -> list[CapturedLog]:
        """Records of one flow run: its own and its tasks' (not its subflows')."""
        wanted = coerce_uuid(flow_run_id, argument="flow_run_id")
        return [record for record in self.records if record.flow_run_id == wanted]

    def messages(self, level: int | str | None = None) -> list[str]:
        """Messages in logging order; with ``level``, only records at exactly that level."""
        return [record.message for record in self._filtered(level)]

    def text(self) -> str:
        """All records, one per line, with level, logger, run ids and message."""
        lines = [str(record) for record in self.records]
        if self.run_logger_disabled_during_capture:
            lines.append(DISABLED_NOTE)
        return "\n".join(lines)

    def assert_logged(
        self,
        text: str,
        level: int | str | None = None,
        *,
        flow_run_id: UUID | str | None = None,
    ) -> CapturedLog:
        """Assert a record's message contains ``text`` (optionally at exactly ``level``,
        optionally in one flow run) and return the first such record.

        The AssertionError lists everything captured and says whether the run logger was
        disabled during the capture.
        """
        matches = self._matching(text, level, flow_run_id)
        if matches:
            return matches[0]
        raise AssertionError(self._failure("Expected", text, level, flow_run_id, []))

    def assert_not_logged(
        self,
        text: str,
        level: int | str | None = None,
        *,
        flow_run_id: UUID | str | None = None,
    ) -> None:
        """Assert no record's message contains ``text`` (at ``level``, in ``flow_run_id``)."""
        matches = self._matching(text, level, flow_run_id)
        if matches:
            raise AssertionError(self._failure("Did not expect", text, level, flow_run_id, matches))

    def _matching(
        self, text: str, level: int | str | None, flow_run_id: UUID | str | None
    ) -> list[CapturedLog]:
        if not isinstance(text, str):
            raise TypeError(
                f"text must be a str to look for in log messages, got {type(text).__name__}: "
                f"{text!r}"
            )
        records = self._filtered(level)
        if flow_run_id is not None:
            run = coerce_uuid(flow_run_id, argument="flow_run_id")
            records = [record for record in records if record.flow_run_id == run]
        return [record for record in records if text in record.message]

    def _filtered(self, level: int | str | None) -> list[CapturedLog]:
        if level is None:
            return self.records
        number = coerce_level(level)
        return [record for record in self.records if record.level == number]

    def _failure(
        self,
        verb: str,
        text: str,
        level: int | str | None,
        flow_run_id: UUID | str | None,
        matches: list[CapturedLog],
    ) -> str:
        where = ""
        if level is not None:
            where += f" at level {logging.getLevelName(coerce_level(level))}"
        if flow_run_id is not None:
            where += f" in flow run {flow_run_id}"
        records = self.records
        lines = [f"{verb} a Prefect run log containing {text!r}{where}."]
        if matches:
            lines.append(f"{len(matches)} matching record(s):")
            lines.extend(f"  {record}" for record in matches)
        elif records:
            lines.append(f"Captured {len(records)} run log record(s):")
            lines.extend(f"  {record}" for record in records)
        else:
            lines.append(
                "No run log records were captured. Did a flow or task run inside the capture? "
                "Records below the run loggers' effective level "
                f"({_effective_level_names()}) are not emitted; pass level='DEBUG' to "
                "capture_prefect_logs() to see more."
            )
        if self.run_logger_disabled_during_capture:
            lines.append(DISABLED_NOTE)
        return "\n".join(lines)

    def _add(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            # A bad %-format in the caller's message must not break the run being tested.
            message = str(record.msg)
        captured = CapturedLog(
            logger_name=record.name,
            level=record.levelno,
            message=message,
            flow_run_id=record_uuid(getattr(record, "flow_run_id", None)),
            task_run_id=record_uuid(getattr(record, "task_run_id", None)),
            created=record.created,
            thread_name=record.threadName,
            record=record,
        )
        with self._lock:
            if self._active:
                self._records.append(captured)

    def _note_disabled(self, logger_name: str) -> None:
        if self._active:
            self._disabled_loggers.add(logger_name)


class _CaptureHandler(logging.Handler):
    def __init__(self, capture: PrefectLogCapture) -> None:
        super().__init__(logging.NOTSET)
        self._capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        self._capture._add(record)


def _effective_level_names() -> str:
    return ", ".join(
        f"{name}={logging.getLevelName(logging.getLogger(name).getEffectiveLevel())}"
        for name in RUN_LOGGER_NAMES
    )


@contextmanager
def capture_prefect_logs(*, level: int | str | None = None) -> Iterator[PrefectLogCapture]:
    """Capture every record emitted by flow and task run loggers inside the block.

    The handler is attached to ``prefect.flow_runs`` and ``prefect.task_runs`` themselves
    (and to any child logger that stops propagation), so the capture does not depend on
    propagation to the root logger or on the user's logging configuration. Records from
    any thread count: task runner threads, async tasks, subflows.

    Args:
        level: if given, the run loggers' level is set to it for the duration (e.g.
            ``"DEBUG"``; by default they inherit INFO from the ``prefect`` logger) and
            restored afterwards. This also changes what is sent to the API meanwhile.

    Captures nest; each sees every record. On exit every handler and level is restored.
    """
    new_level = None if level is None else coerce_level(level)
    # Prefect configures logging lazily; if its non-incremental dictConfig ran after we
    # attached, it would strip our handler from the run loggers.
    ensure_logging_setup()
    capture = PrefectLogCapture()
    handler = _CaptureHandler(capture)
    unsubscribe = _watch.subscribe(capture._note_disabled)
    entries: list[logging.Logger] = []
    saved_levels: dict[str, int] = {}
    try:
        for name in RUN_LOGGER_NAMES:
            if logging.getLogger(name).disabled:
                capture._note_disabled(name)
        entries = run_log_entry_loggers()
        for logger in entries:
            logger.addHandler(handler)
        if new_level is not None:
            for name in RUN_LOGGER_NAMES:
                logger = logging.getLogger(name)
                saved_levels[name] = logger.level
                logger.setLevel(new_level)
        yield capture
    finally:
        for name, saved in saved_levels.items():
            logging.getLogger(name).setLevel(saved)
        for logger in entries:
            logger.removeHandler(handler)
        unsubscribe()
        with capture._lock:
            capture._active = False
