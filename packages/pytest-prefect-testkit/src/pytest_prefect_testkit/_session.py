"""The per-process state behind the session fixture: start once, remember the outcome."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest

from prefect_testkit import HarnessHandle, HarnessStartupError, prefect_test_harness
from prefect_testkit_xdist import worker_identity
from pytest_prefect_testkit._options import PluginOptions


class HarnessManager:
    """Owns this process's (this xdist worker's) session harness.

    Lives in ``config.stash`` rather than a module global, so that in-process pytester
    runs nested inside another pytest session each get their own.
    """

    def __init__(self, options: PluginOptions) -> None:
        self.options = options
        self._stack = ExitStack()
        self._handle: HarnessHandle | None = None
        self._failure: BaseException | None = None
        self._attempts = 0
        self._resets: list[float] = []
        self._record: dict[str, Any] | None = None

    @property
    def active(self) -> HarnessHandle | None:
        """The running session harness, if one has been started and not yet stopped."""
        return self._handle

    def start(self) -> HarnessHandle:
        if self._handle is not None:
            return self._handle
        if self._failure is not None:
            # A start costs up to the whole timeout; retrying it for every test would turn
            # one broken server into a suite that hangs for minutes.
            raise HarnessStartupError(
                "The Prefect test harness failed to start earlier in this worker and is not "
                f"retried; the first error was:\n{type(self._failure).__name__}: "
                f"{self._failure}"
            ) from None
        self._attempts += 1
        try:
            handle = self._stack.enter_context(
                prefect_test_harness(
                    self.options.startup_timeout,
                    port_range=self.options.port_range,
                    keep_files=self.options.keep_db,
                    database=self.options.database,
                )
            )
        except BaseException as exc:
            self._failure = exc
            raise
        self._handle = handle
        self._record = {
            "worker": worker_identity().worker,
            "api_url": handle.api_url,
            "server_pid": handle.server_pid,
            "database": handle.database_location,
            "log_path": str(handle.log_path),
            "startup_seconds": handle.startup_seconds,
            "kept": self.options.keep_db,
        }
        return handle

    def reset_database(self) -> float:
        handle = self.start()
        seconds = handle.reset_database()
        self._resets.append(seconds)
        return seconds

    def stop(self) -> None:
        self._handle = None
        self._stack.close()

    def summary(self) -> dict[str, Any] | None:
        """What this process's harness did, as plain data (xdist sends it to the controller)."""
        if self._record is not None:
            return {**self._record, "resets": len(self._resets), "reset_seconds": sum(self._resets)}
        if self._failure is not None:
            return {
                "worker": worker_identity().worker,
                "failure": f"{type(self._failure).__name__}: {self._failure}".splitlines()[0],
                "attempts": self._attempts,
            }
        return None


manager_key = pytest.StashKey[HarnessManager]()


def get_manager(config: pytest.Config) -> HarnessManager:
    return config.stash[manager_key]
