"""``prefect_test_harness``: a temporary Prefect API server and database for tests.

The harness is a sequence of steps, each a context manager whose exit undoes it: the
teardown watchdog, the leased directory, the database, Prefect's server-side settings,
the server, Prefect's client settings. An ``ExitStack`` enters them in that order and
leaves them in reverse, on every way out.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prefect_testkit import _prefect as prefect_api
from prefect_testkit import _route as route
from prefect_testkit._errors import HarnessConfigError, HarnessStartupError, allocator_errors
from prefect_testkit._files import copy_private, make_private_dir
from prefect_testkit._launch.process import (
    LOG_TAIL_LINES,
    ServerProcess,
    TeardownWatchdog,
    api_url,
    read_log_tail,
)
from prefect_testkit._postgres.binaries import find_binaries
from prefect_testkit._postgres.cluster import local_cluster
from prefect_testkit._postgres.database import PostgresServer, configured_server, harness_database
from prefect_testkit._sqlite.template import TemplateCache
from prefect_testkit.config import (
    DEFAULT_STARTUP_TIMEOUT,
    HIDE_FROM_MOCKS_ENV,
    HarnessConfig,
    PortRange,
)
from prefect_testkit_logging import drain_workers
from prefect_testkit_xdist import lease_directory, lease_port


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
    _route: prefect_api.Route = field(repr=False, compare=False)

    @property
    def refused_api_urls(self) -> tuple[str, ...]:
        """The other Prefect APIs that clients were refused for, in order (`OtherAPIError`).

        Prefect's own background workers swallow the error: the pytest plugin fails the
        test whose code did it.
        """
        return tuple(self._route.refused)

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
    server_startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
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
    config = HarnessConfig.resolve(
        server_startup_timeout,
        port_range=port_range,
        keep_files=keep_files,
        initial_database=initial_database,
        database=database,
        teardown_timeout=teardown_timeout,
    )
    postgres = _check_database_backend(config)
    _check_private_route(config)
    prefect_api.check_working_set()
    # 3.0 has no API auth string: the option is off there (README, support table).
    auth = config.api_auth and prefect_api.API_AUTH_SUPPORTED
    auth_string = secrets.token_urlsafe(32) if auth else None

    with ExitStack() as stack:
        # First in, so last out: it reports an overrun once everything else is clean.
        teardown = stack.enter_context(TeardownWatchdog(config.teardown_timeout))
        directory = stack.enter_context(_leased_directory(config))
        db = stack.enter_context(_database(config, directory, postgres))
        stack.enter_context(prefect_api.server_settings(directory / "home", db.url))
        server = stack.enter_context(_running_server(config, directory, db, auth_string, teardown))
        stack.enter_context(prefect_api.client_settings(server.api_url, auth_string, server.port))
        api_route = prefect_api.Route(
            server.api_url, config.hide_from_http_mocks, config.allow_other_apis
        )
        stack.enter_context(prefect_api.routed_clients(api_route))
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
            database_backend=config.database,
            database_url=db.url,
            database_location=db.location,
            database_file=db.file,
            database_name=db.name,
            home=directory / "home",
            directory=directory,
            log_path=server.log_path,
            server_pid=server.pid,
            startup_seconds=server.startup_seconds or 0.0,
            api_auth_string=auth_string,
            database_from_template=db.from_template,
            server_forked=server.forked,
            _server=server,
            _route=api_route,
        )


def _check_database_backend(config: HarnessConfig) -> PostgresServer | None:
    """The configured PostgreSQL server, if any; a backend that cannot work fails here,
    before anything starts."""
    if config.database == "sqlite":
        _require_sqlite()
        return None
    postgres = configured_server()
    if postgres is None:
        find_binaries()  # a missing install is reported before anything starts
    return postgres


def _check_private_route(config: HarnessConfig) -> None:
    problem = route.pinning_error() if config.hide_from_http_mocks else None
    if problem is not None:
        raise HarnessConfigError(
            f"{problem}, or set {HIDE_FROM_MOCKS_ENV}=false to let mocks see the harness's traffic."
        )


@contextmanager
def _leased_directory(config: HarnessConfig) -> Iterator[Path]:
    """The harness's own directory, with a private ``home`` in it; removed on exit unless
    ``keep_files``."""
    with allocator_errors():
        lease = lease_directory("harness")
    try:
        try:
            make_private_dir(lease.path / "home")
        except OSError as exc:
            raise _unprepared(lease.path, exc) from exc
        yield lease.path
    finally:
        lease.release(remove=not config.keep_files)


@dataclass(frozen=True)
class _Database:
    url: str
    location: str  # printable: the file, or the URL without its password
    file: Path | None
    name: str | None
    from_template: bool
    template: TemplateCache | None = None  # SQLite's, saved once a fresh server has migrated


@contextmanager
def _database(
    config: HarnessConfig, directory: Path, postgres: PostgresServer | None
) -> Iterator[_Database]:
    if config.database == "sqlite":
        yield _sqlite_database(config, directory)
        return
    with ExitStack() as stack:
        server = postgres or stack.enter_context(local_cluster(config.startup_timeout))
        created = stack.enter_context(harness_database(server, directory, keep=config.keep_files))
        yield _Database(created.url, created.location, None, created.name, created.from_template)


def _sqlite_database(config: HarnessConfig, directory: Path) -> _Database:
    file, seed = directory / "prefect.db", config.initial_database
    template = TemplateCache() if seed is None and config.template_cache else None
    try:
        if seed is not None:
            copy_private(seed, file)
        from_template = template is not None and template.restore(file, directory / "home")
    except OSError as exc:
        raise _unprepared(directory, exc) from exc
    return _Database(f"sqlite+aiosqlite:///{file}", str(file), file, None, from_template, template)


@contextmanager
def _running_server(
    config: HarnessConfig,
    directory: Path,
    db: _Database,
    auth_string: str | None,
    teardown: TeardownWatchdog,
) -> Iterator[ServerProcess]:
    """A healthy server on a leased port; a fresh SQLite database becomes the template."""
    with allocator_errors():
        port_lease = lease_port(config.port_range)
    with port_lease:
        server = ServerProcess(
            port_lease,
            prefect_api.server_environment(auth_string, api_url(port_lease.port)),
            directory / "server.log",
            config.startup_timeout,
            use_factory=config.server_factory,
        )
        try:
            kept = (
                "" if config.keep_files else " (removed on exit; pass keep_files=True to keep it)"
            )
            server.wait_until_healthy({"database": db.location, "directory": f"{directory}{kept}"})
            if db.template is not None and db.file is not None and not db.from_template:
                db.template.save(db.file, directory / "home")
            yield server
        finally:
            teardown.step("stopping the server", server.stop)


def _unprepared(directory: Path, exc: OSError) -> HarnessStartupError:
    return HarnessStartupError(
        f"The harness could not prepare its directory {directory}: {exc}. Free space "
        "there, or point PREFECT_TESTKIT_LOCK_DIR at a writable local file system."
    )


def _require_sqlite() -> None:
    try:
        import sqlite3  # noqa: F401
    except ImportError as exc:
        raise HarnessConfigError(
            "The harness needs Python's sqlite3 module, which this interpreter lacks "
            f"({exc}). Install SQLite's headers (Debian/Ubuntu: libsqlite3-dev; Fedora: "
            "sqlite-devel) and rebuild Python, or use a Python build that includes sqlite3."
        ) from None


# A dead server cannot take what the workers hold: give up on it sooner than the bound.
_DEAD_SERVER_DRAIN_SECONDS = 5.0


def _drain_before_stop(server: ServerProcess, teardown: TeardownWatchdog) -> None:
    limit = teardown.time_left()
    if server.returncode is not None:
        limit = min(limit, _DEAD_SERVER_DRAIN_SECONDS)
    drain_workers(limit)
