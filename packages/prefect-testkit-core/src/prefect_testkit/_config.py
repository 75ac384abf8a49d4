"""Environment switches of the harness, validated where they are read."""

from __future__ import annotations

import os

from prefect_testkit._errors import HarnessConfigError

DATABASE_ENV = "PREFECT_TESTKIT_DATABASE"
DATABASE_BACKENDS = ("sqlite", "postgresql")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment variable; anything but a recognised spelling is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise HarnessConfigError(f"{name}={raw!r} is not a boolean; use true or false")
