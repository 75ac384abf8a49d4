"""Exceptions raised by the harness."""

from __future__ import annotations


class HarnessConfigError(ValueError):
    """A harness parameter or environment variable has a value the harness cannot use."""


class HarnessStartupError(RuntimeError):
    """The test server did not become healthy; the message says where and why."""
