"""Notice when the run loggers get disabled, whoever disables them.

``disable_run_logger()``, ``call_fn()``, ``logging.config`` and plain ``logger.disabled = True``
all just assign ``Logger.disabled``. Records logged while it is True are dropped inside
``Logger.isEnabledFor`` before any handler runs, so a capture cannot see them; it can only
say that it happened. To hear every assignment, the run loggers temporarily get a subclass
of their own class whose ``disabled`` is a property, storing the value where the stock
attribute lives (the instance ``__dict__``) so that swapping the class back loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prefect_testkit_logging._prefect import RUN_LOGGER_NAMES

Listener = Callable[[str], None]

_lock = threading.Lock()
_listeners: list[Listener] = []
_installed: dict[str, type[logging.Logger]] = {}
_watched_classes: dict[type[logging.Logger], type[logging.Logger]] = {}


def _notify(logger_name: str) -> None:
    for listener in tuple(_listeners):
        listener(logger_name)


def _get_disabled(self: logging.Logger) -> bool:
    return bool(self.__dict__.get("disabled", False))


def _set_disabled(self: logging.Logger, value: bool) -> None:
    self.__dict__["disabled"] = value
    if value:
        _notify(self.name)


def _watched_class(base: type[logging.Logger]) -> type[logging.Logger]:
    cls = _watched_classes.get(base)
    if cls is None:
        namespace: dict[str, Any] = {"disabled": property(_get_disabled, _set_disabled)}
        cls = type(f"_DisableWatched{base.__name__}", (base,), namespace)
        _watched_classes[base] = cls
    return cls


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(logger_name)`` whenever a run logger is disabled; returns unsubscribe."""
    with _lock:
        if not _listeners:
            for name in RUN_LOGGER_NAMES:
                logger = logging.getLogger(name)
                base = type(logger)
                logger.__class__ = _watched_class(base)
                _installed[name] = base
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)
            if _listeners:
                return
            for name, base in _installed.items():
                logger = logging.getLogger(name)
                # Someone else may have swapped the class after us; leave theirs alone.
                if type(logger) is _watched_classes.get(base):
                    logger.__class__ = base
            _installed.clear()

    return unsubscribe
