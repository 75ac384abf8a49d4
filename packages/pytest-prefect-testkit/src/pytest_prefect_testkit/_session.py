"""The per-process state behind the session fixture: start once, remember the outcome,
and replace a server that died once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

from prefect_testkit import HarnessStartupError
from prefect_testkit_xdist import worker_identity
from pytest_prefect_testkit._options import PluginOptions

if TYPE_CHECKING:
    from prefect_testkit import HarnessHandle

# A server may die once per worker and be replaced; the second death means something in
# the suite kills it, and restarting again would only repeat the damage test after test.
RESTARTS_ALLOWED = 1


@dataclasses.dataclass(frozen=True)
class ServerDeath:
    """A session server that died while this worker ran its tests."""

    test: str  # the node id of the test that was running (or had run last)
    server_pid: int
    exit_code: int
    restarted: bool


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A Prefect client refused for another API while a session harness was active."""

    url: str
    harness_url: str


class HarnessManager:
    """Owns this process's (this xdist worker's) session harness.

    Lives in ``config.stash`` rather than a module global, so that in-process pytester
    runs nested inside another pytest session each get their own.
    """

    def __init__(self, options: PluginOptions) -> None:
        self.options = options
        self._stack = ExitStack()
        self._handle: HarnessHandle | None = None
        self._handles: list[HarnessHandle] = []  # every one started, for their refusals
        self._failure: BaseException | None = None
        self._attempts = 0
        self._resets: list[float] = []
        self._record: dict[str, Any] | None = None
        self._deaths: list[ServerDeath] = []
        self._current_test: str | None = None
        # Set by the plugin's session fixtures: each drops pytest's cached value, so that
        # the next test starts a new harness (and re-runs the session fixtures using it).
        self.forgetters: list[Callable[[], None]] = []

    @property
    def active(self) -> HarnessHandle | None:
        """The running session harness, if one has been started and not yet stopped."""
        return self._handle

    @property
    def deaths(self) -> tuple[ServerDeath, ...]:
        return tuple(self._deaths)

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
        from prefect_testkit import prefect_test_harness

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
        self._handles.append(handle)
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

    def refusals(self) -> tuple[Refusal, ...]:
        """Every client refused for another API by this process's session harnesses, in
        order; only ever grows, across a restart too."""
        return tuple(
            Refusal(url, handle.api_url)
            for handle in self._handles
            for url in handle.refused_api_urls
        )

    def before_test(self, nodeid: str) -> None:
        """Replace a server that died since the last test, once per worker.

        Called before each test's setup: the test that was running when the server died
        has failed with the cause already (every request got the death's message), and
        this one, if it needs the harness, gets a new server instead of the same failure.
        """
        death = self._unrecorded_death()
        if death is not None:
            self._deaths.append(death)
            if death.restarted:
                try:
                    # Newest first: the autouse fixture, then the harness, whose teardown
                    # stops the dead server.
                    for forget in reversed(self.forgetters):
                        forget()
                except Exception as exc:
                    # Tests that need the harness now fail with this, not with a stale server.
                    self._failure = exc
        self._current_test = nodeid

    def _unrecorded_death(self) -> ServerDeath | None:
        handle = self._handle
        if handle is None or self._current_test is None:
            return None
        code = handle.server_returncode
        if code is None or any(d.server_pid == handle.server_pid for d in self._deaths):
            return None
        restarted = len(self._deaths) < RESTARTS_ALLOWED
        return ServerDeath(self._current_test, handle.server_pid, code, restarted)

    def reset_database(self) -> float:
        handle = self.start()
        seconds = handle.reset_database()
        self._resets.append(seconds)
        return seconds

    def stop(self) -> None:
        self._handle = None
        self.forgetters = []
        self._stack.close()

    def summary(self) -> dict[str, Any] | None:
        """What this process's harness did, as plain data (xdist sends it to the controller)."""
        if self._handle is not None:
            # A death in the last test that needed the server: nothing came to restart it.
            last = self._unrecorded_death()
            if last is not None:
                self._deaths.append(dataclasses.replace(last, restarted=False))
        if self._record is None and self._failure is None:
            return None
        summary: dict[str, Any] = {
            "worker": worker_identity().worker,
            "deaths": [dataclasses.asdict(death) for death in self._deaths],
        }
        if self._record is not None:
            summary.update(self._record, resets=len(self._resets))
            summary["reset_seconds"] = sum(self._resets)
        if self._failure is not None:
            summary["failure"] = f"{type(self._failure).__name__}: {self._failure}".splitlines()[0]
            summary["attempts"] = self._attempts
        return summary


manager_key = pytest.StashKey[HarnessManager]()


def get_manager(config: pytest.Config) -> HarnessManager:
    return config.stash[manager_key]
