"""``prefect_test_harness``: a temporary Prefect API server and database for tests."""

from __future__ import annotations

import inspect
import math
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import prefect.context
import prefect.settings

from prefect_testkit._config import DATABASE_BACKENDS, DATABASE_ENV, env_flag
from prefect_testkit._errors import HarnessConfigError, HarnessStartupError, allocator_errors
from prefect_testkit._files import copy_private, make_private_dir
from prefect_testkit._pg_cluster import find_binaries, local_cluster
from prefect_testkit._postgres import PostgresServer, configured_server, harness_database
from prefect_testkit._process import (
    DEFAULT_TEARDOWN_TIMEOUT,
    LOG_TAIL_LINES,
    TEARDOWN_TIMEOUT_ENV,
    ServerProcess,
    TeardownWatchdog,
    read_log_tail,
)
from prefect_testkit._protocol import API_AUTH_ENV, SQLITE_IMMEDIATE_ENV
from prefect_testkit._template import TemplateCache, template_cache_enabled
from prefect_testkit_xdist import (
    AllocatorConfigError,
    lease_directory,
    lease_port,
    parse_port_range,
)

if TYPE_CHECKING:
    from prefect.settings.legacy import Setting

PortRange = range | tuple[int, int] | str


@dataclass(frozen=True)
class HarnessHandle:
    """Where the harness's server, database and files are."""

    api_url: str
    port: int
    database_backend: str  # "sqlite" or "postgresql"
    database_url: str = field(repr=False)  # PostgreSQL's carries the password
    database_location: str  # the file, or the database's URL without the password
    database_file: Path | None  # None on PostgreSQL
    database_name: str | None  # None on SQLite
    home: Path
    directory: Path
    log_path: Path
    server_pid: int
    startup_seconds: float
    api_auth_string: str | None = field(repr=False)
    database_from_template: bool
    server_forked: bool
    _server: ServerProcess = field(repr=False, compare=False)

    @property
    def server_returncode(self) -> int | None:
        """None while the server runs; its exit code once it has stopped."""
        return self._server.returncode

    @property
    def server_death(self) -> str | None:
        """Why the server died on its own (exit code, end of its log), or None.

        Once it has, every API request fails at once with this text (HTTP 500 from the
        harness, which Prefect's client does not retry) instead of backing off.
        """
        return self._server.death

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the server wrote to its log."""
        return read_log_tail(self.log_path, lines)

    def flush(self) -> None:
        """Wait until the server has recorded everything this process sent it.

        Task runs, events and logs travel from the client to the database asynchronously,
        as in production: a flow can return before its task runs are readable through
        the API. Call this before asserting on them.
        """
        drain_workers()
        self._server.wait_for_quiet_message_bus()

    def reset_database(self) -> float:
        """Empty the database without restarting the server; return the seconds it took.

        Afterwards the API holds no flow runs, task runs, deployments, block documents,
        variables, artifacts, logs or events, as in a fresh harness. Logs and events
        still buffered in this process are sent first, so none arrive afterwards.
        """
        started = time.perf_counter()
        drain_workers()
        self._server.empty_database()
        return time.perf_counter() - started


@contextmanager
def prefect_test_harness(
    server_startup_timeout: float | None = 30,
    *,
    port_range: PortRange | None = None,
    keep_files: bool = False,
    initial_database: str | os.PathLike[str] | None = None,
    database: str | None = None,
    teardown_timeout: float | None = None,
) -> Iterator[HarnessHandle]:
    """Run flows against a temporary Prefect API server and database.

    A drop-in for ``prefect.testing.utilities.prefect_test_harness``: same call, same
    default timeout, ``None`` falls back to ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``.

    Args:
        server_startup_timeout: Seconds to wait for the server to become healthy.
        port_range: Ports to lease from (``range``, inclusive ``(low, high)`` or
            ``"low-high"``); default ``PREFECT_TESTKIT_PORT_RANGE`` or 8000-8999.
        keep_files: Keep the database, home and server log after exit.
        initial_database: A SQLite file to start from; it is copied, never modified.
        database: ``"sqlite"`` or ``"postgresql"``; default ``PREFECT_TESTKIT_DATABASE``
            or ``"sqlite"``. PostgreSQL uses the server in ``PREFECT_TESTKIT_POSTGRES_URL``,
            else a throwaway local cluster (see the README's PostgreSQL section).
        teardown_timeout: Seconds that leaving may take; default
            ``PREFECT_TESTKIT_TEARDOWN_TIMEOUT`` or 30. Past them the harness takes this
            process's and the server's stacks, kills the server, cleans up, and raises
            `HarnessTeardownError` (or, if the body raised, warns with
            `HarnessTeardownWarning` so that the body's exception stays the error).

    Yields:
        A `HarnessHandle` naming the API URL, port, database, home and server log.
    """
    timeout = _startup_timeout(server_startup_timeout)
    teardown_bound = _teardown_timeout(teardown_timeout)
    ports = _port_range(port_range)
    if not isinstance(keep_files, bool):
        raise HarnessConfigError(f"keep_files must be True or False, got {keep_files!r}")
    seed = _initial_database(initial_database)
    backend = _database_backend(database)
    postgres: PostgresServer | None = None
    if backend == "postgresql":
        if seed is not None:
            raise HarnessConfigError(
                "initial_database is a SQLite file and cannot seed a PostgreSQL database; "
                "drop initial_database or use database='sqlite'"
            )
        postgres = configured_server()
        if postgres is None:
            find_binaries()  # a missing install is reported before anything starts
    else:
        _require_sqlite()
    env_flag(SQLITE_IMMEDIATE_ENV, default=True)  # read by the server: fail here, not there
    auth_string = secrets.token_urlsafe(32) if env_flag(API_AUTH_ENV, default=True) else None

    with ExitStack() as stack:
        # First in, so last out: it reports an overrun once everything else is clean.
        teardown = stack.enter_context(TeardownWatchdog(teardown_bound))
        with allocator_errors():
            directory_lease = lease_directory("harness")
        stack.callback(directory_lease.release, remove=not keep_files)
        directory = directory_lease.path
        home = directory / "home"
        try:
            make_private_dir(home)
        except OSError as exc:
            raise _unprepared(directory, exc) from exc
        if backend == "sqlite":
            db = _sqlite_database(directory, home, seed)
        else:
            postgres = postgres or stack.enter_context(local_cluster(timeout))
            created = stack.enter_context(harness_database(postgres, directory, keep=keep_files))
            db = _Database(
                created.url, created.display_url, None, created.name, created.from_template
            )

        # Server-side code in this process (tests of Prefect server models, say) must use
        # our database, not a cached interface. Imported only if something already did:
        # the import costs a second, and later importers get an interface from our settings.
        database_dependencies = sys.modules.get("prefect.server.database.dependencies")
        if database_dependencies is not None:
            stack.enter_context(database_dependencies.temporary_database_interface())
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={
                    prefect.settings.PREFECT_HOME: str(home),
                    prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: db.url,
                    **_client_defaults(),
                }
            )
        )

        with allocator_errors():
            port_lease = lease_port(ports)
        server = ServerProcess(
            stack.enter_context(port_lease),
            _server_environment(auth_string),
            directory / "server.log",
            timeout,
        )
        stack.callback(teardown.step, "stopping the server", server.stop)
        startup_seconds = server.wait_until_healthy(
            {
                "database": db.location,
                "directory": directory
                if keep_files
                else f"{directory} (removed on exit; pass keep_files=True to keep it)",
            },
        )

        if db.template is not None and db.file is not None and not db.from_template:
            db.template.save(db.file, home)

        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={
                    prefect.settings.PREFECT_API_URL: server.api_url,
                    prefect.settings.PREFECT_API_AUTH_STRING: auth_string,
                }
            )
        )
        # Contexts copied before the harness started (an IsolatedAsyncioTestCase built at
        # collection time, say) read the process-global settings: point those at us too.
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        _register_as_default_server(stack, server.port)
        # On every way out, before the server stops: logs written at the end of the body
        # still reach it, and no worker outlives the harness.
        stack.callback(
            teardown.step,
            "draining Prefect's log and event workers into the server",
            lambda: _drain_before_stop(server, teardown),
        )
        stack.callback(teardown.arm, server)  # the first thing on the way out

        yield HarnessHandle(
            api_url=server.api_url,
            port=server.port,
            database_backend=backend,
            database_url=db.url,
            database_location=db.location,
            database_file=db.file,
            database_name=db.name,
            home=home,
            directory=directory,
            log_path=server.log_path,
            server_pid=server.pid,
            startup_seconds=startup_seconds,
            api_auth_string=auth_string,
            database_from_template=db.from_template,
            server_forked=server.forked,
            _server=server,
        )


@dataclass(frozen=True)
class _Database:
    url: str
    location: str
    file: Path | None
    name: str | None
    from_template: bool
    template: TemplateCache | None = None  # SQLite's, saved once a fresh server has migrated


def _sqlite_database(directory: Path, home: Path, seed: Path | None) -> _Database:
    file = directory / "prefect.db"
    template = TemplateCache() if seed is None and template_cache_enabled() else None
    try:
        if seed is not None:
            copy_private(seed, file)
        from_template = template is not None and template.restore(file, home)
    except OSError as exc:
        raise _unprepared(directory, exc) from exc
    return _Database(f"sqlite+aiosqlite:///{file}", str(file), file, None, from_template, template)


def _unprepared(directory: Path, exc: OSError) -> HarnessStartupError:
    return HarnessStartupError(
        f"The harness could not prepare its directory {directory}: {exc}. Free space "
        "there, or point PREFECT_TESTKIT_LOCK_DIR at a writable local file system."
    )


def _startup_timeout(value: object) -> float:
    setting = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    source = "server_startup_timeout"
    if value is None:
        value = prefect.settings.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        source = f"{setting} (used because server_startup_timeout is None)"
    return _positive_seconds(value, source, "pass e.g. server_startup_timeout=30")


def _teardown_timeout(value: object) -> float:
    if value is not None:
        example = f"pass e.g. teardown_timeout={DEFAULT_TEARDOWN_TIMEOUT:g}"
        return _positive_seconds(value, "teardown_timeout", example)
    raw = os.environ.get(TEARDOWN_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TEARDOWN_TIMEOUT
    source = f"{TEARDOWN_TIMEOUT_ENV}={raw!r}"
    example = f"set e.g. {TEARDOWN_TIMEOUT_ENV}={DEFAULT_TEARDOWN_TIMEOUT:g}"
    try:
        seconds = float(raw)
    except ValueError:
        raise HarnessConfigError(f"{source} is not a number of seconds; {example}") from None
    return _positive_seconds(seconds, source, example)


def _positive_seconds(value: object, source: str, example: str) -> float:
    """``value`` as seconds, or an error naming ``source`` and an ``example`` of a fix."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessConfigError(
            f"{source} must be a positive number of seconds, got {value!r} "
            f"({type(value).__name__}); {example}"
        )
    if not math.isfinite(value) or value <= 0:
        raise HarnessConfigError(
            f"{source} must be a positive, finite number of seconds, got {value!r}; {example}"
        )
    return float(value)


def _port_range(value: PortRange | None) -> range | None:
    if value is None:
        return None
    try:
        return parse_port_range(value)
    except AllocatorConfigError as exc:
        raise HarnessConfigError(f"port_range: {exc}") from exc


def _initial_database(value: str | os.PathLike[str] | None) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise HarnessConfigError(
            f"initial_database must be a path to a SQLite file or None, got {value!r}"
        )
    path = Path(value)
    if not path.is_file():
        raise HarnessConfigError(
            f"initial_database {str(path)!r} is not an existing file; "
            "pass the path of a SQLite database or None for an empty one"
        )
    return path


def _database_backend(value: object) -> str:
    source = "database"
    if value is None:
        value = os.environ.get(DATABASE_ENV, "").strip() or "sqlite"
        source = DATABASE_ENV
    if value not in DATABASE_BACKENDS:
        raise HarnessConfigError(
            f"{source}={value!r} is not a database backend the harness offers; "
            f"use {' or '.join(map(repr, DATABASE_BACKENDS))}"
        )
    return str(value)


def _require_sqlite() -> None:
    try:
        import sqlite3  # noqa: F401
    except ImportError as exc:
        raise HarnessConfigError(
            "The harness needs Python's sqlite3 module, which this interpreter lacks "
            f"({exc}). Install SQLite's headers (Debian/Ubuntu: libsqlite3-dev; Fedora: "
            "sqlite-devel) and rebuild Python, or use a Python build that includes sqlite3."
        ) from None


# Where a test server's defaults differ from Prefect's; a value the user set wins.
SERVER_DEFAULTS = {
    # Persist each event as it arrives, so that once the message bus is quiet every
    # event is in the database: reset_database() must not race a 5 s flush buffer.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "1",
}


def _client_defaults() -> dict[Setting, object]:
    """Settings of the test process where the harness's defaults differ from Prefect's."""
    defaults: dict[Setting, object] = {}
    if "heartbeat_frequency" not in prefect.settings.get_current_settings().flows.model_fields_set:
        # Every flow run joins its heartbeat thread on exit, which sleeps in 1 s steps:
        # about a second per flow. Set PREFECT_FLOWS_HEARTBEAT_FREQUENCY to keep them.
        defaults[prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    return defaults


def _server_environment(auth_string: str | None) -> dict[str, str]:
    """The child's environment: ours, the current Prefect settings, and test-server defaults.

    It reaches the child through the environment (spawned: readable by our user only) or
    over the factory's private socket (forked): never on a command line.
    """
    settings_env = prefect.settings.get_current_settings().to_environment_variables(
        exclude_unset=True
    )
    if auth_string is not None:
        settings_env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    return {
        **SERVER_DEFAULTS,
        **os.environ,
        **settings_env,
        # A test server must make no connection beyond loopback.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }


def _register_as_default_server(stack: ExitStack, port: int) -> None:
    """Make Prefect code that asks for "the" ephemeral server find ours, not start one.

    Only when this process has imported Prefect's server module already: importing it
    costs seconds, and code that has not imported it cannot have asked for a server.
    """
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return
    SubprocessASGIServer = server_module.SubprocessASGIServer
    registry = SubprocessASGIServer._instances
    saved = {key: registry.get(key) for key in (None, port)}
    alias = SubprocessASGIServer(port=port)
    alias.running = True  # so that start() never spawns a second server
    registry[None] = alias

    def restore() -> None:
        for key, previous in saved.items():
            if previous is None:
                registry.pop(key, None)
            else:
                registry[key] = previous

    stack.callback(restore)


# A dead server cannot take what the workers hold: give up on it sooner than the bound.
_DEAD_SERVER_DRAIN_SECONDS = 5.0


def _drain_before_stop(server: ServerProcess, teardown: TeardownWatchdog) -> None:
    limit = teardown.time_left()
    if server.returncode is not None:
        limit = min(limit, _DEAD_SERVER_DRAIN_SECONDS)
    drain_workers(limit)


def drain_workers(timeout: float | None = None) -> None:
    """Flush Prefect's log and event workers into the server, and stop them.

    Stopped workers matter as much as flushed ones: the event worker is one per process
    and keeps the API URL it started with, so one left running would send the next
    harness's events to this harness's (gone) server. ``timeout`` bounds both together.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    deadline = None if timeout is None else time.monotonic() + timeout

    async def drain() -> None:
        for service in (APILogWorker, EventsWorker):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            drained = service.drain_all(timeout=left, at_exit=False)
            if inspect.isawaitable(drained):
                await drained

    run_coro_as_sync(drain())
