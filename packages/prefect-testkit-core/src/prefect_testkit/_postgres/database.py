"""PostgreSQL for harnesses: the server to use, a migrated template, a database per harness.

Every harness gets its own database, created with ``CREATE DATABASE ... TEMPLATE`` from a
template that is migrated once per Prefect version and migration set and then reused by
every later harness and session on that server. Each database is recorded in its
harness's leased directory before it exists, so ``prefect-testkit clean`` can drop the
databases of harnesses that died without dropping them, and no one else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from prefect.utilities.asyncutils import run_coro_as_sync
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from prefect_testkit._errors import HarnessConfigError, HarnessStartupError
from prefect_testkit._files import hold_lock, write_private
from prefect_testkit._sqlite.template import cache_dir, migrations_fingerprint
from prefect_testkit.config import POSTGRES_URL_ENV, mask_password
from prefect_testkit_xdist import worker_identity

RECORD_NAME = "postgres.json"
DATABASE_PREFIX = "ptk_"
TEMPLATE_PREFIX = "ptk_template_"
CONNECT_TIMEOUT_SECONDS = 5.0
# Building a template runs every migration once; it is not bounded by the startup timeout.
TEMPLATE_BUILD_TIMEOUT_SECONDS = 300.0
# How long CREATE DATABASE retries while someone else is connected to the template.
TEMPLATE_BUSY_SECONDS = 5.0

logger = logging.getLogger(__name__)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server and a role that may create databases on it."""

    url: URL  # postgresql+asyncpg, naming the maintenance database to connect to
    source: str  # where the URL came from, for messages
    local_cluster: bool = False

    @property
    def host(self) -> str | None:
        # A Unix socket directory comes as ?host=/path when the URL names no host.
        socket_dir = self.url.query.get("host")
        return self.url.host or (socket_dir if isinstance(socket_dir, str) else None)

    @property
    def where(self) -> str:
        return f"{self.url.username}@{self.host or 'localhost'}:{self.url.port or 5432}"

    def database_url(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def location(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=True)

    async def connect(self, database: str | None = None) -> asyncpg.Connection:
        url = self.url
        try:
            return await asyncpg.connect(
                host=self.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=database or url.database,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except (
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidAuthorizationSpecificationError,
        ) as exc:
            raise HarnessStartupError(
                f"PostgreSQL at {self.where} refused the login of {url.username!r}: {exc}. "
                f"Fix the user name and password in {self.source}, and check that the "
                "server's pg_hba.conf lets that user connect from this host."
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise HarnessStartupError(
                f"PostgreSQL at {self.where} has no database {url.database!r} to connect to. "
                f"Name an existing one (usually postgres) in {self.source}."
            ) from None
        except (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError) as exc:
            raise HarnessStartupError(
                f"PostgreSQL at {self.host or 'localhost'}:{url.port or 5432} is unreachable "
                f"({type(exc).__name__}: {exc or 'timed out'}). Start the server, or fix the "
                f"host and port in {self.source}."
            ) from None


def server_from_url(raw: str, source: str, *, local_cluster: bool = False) -> PostgresServer:
    """Validate a PostgreSQL connection URL; any driver spelling becomes asyncpg."""
    example = "postgresql://user:password@127.0.0.1:5432/postgres"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise HarnessConfigError(
            f"{source}={mask_password(raw)!r} is not a database URL; use e.g. {example}"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in ("postgresql", "postgres") or driver not in ("", "asyncpg"):
        raise HarnessConfigError(
            f"{source}={mask_password(raw)!r} is not a PostgreSQL URL (scheme "
            f"{url.drivername!r}); use postgresql:// or postgresql+asyncpg://, e.g. {example}"
        )
    if not url.username:
        raise HarnessConfigError(
            f"{source}={mask_password(raw)!r} names no user; use e.g. {example}"
        )
    url = url.set(drivername="postgresql+asyncpg", database=url.database or "postgres")
    return PostgresServer(url, source, local_cluster)


def configured_server() -> PostgresServer | None:
    """The server named by PREFECT_TESTKIT_POSTGRES_URL, or None for a local cluster."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if raw is None or not raw.strip():
        return None
    return server_from_url(raw.strip(), POSTGRES_URL_ENV)


def template_name() -> str:
    return TEMPLATE_PREFIX + migrations_fingerprint("postgresql")


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _create_database(server: PostgresServer, conn: asyncpg.Connection, sql: str) -> None:
    try:
        await conn.execute(sql)
    except asyncpg.InsufficientPrivilegeError:
        raise HarnessStartupError(
            f"PostgreSQL role {server.url.username!r} at {server.where} may not create "
            "databases; the harness creates one per harness (and a template once). Grant it "
            f"with: ALTER ROLE {_quote(server.url.username or '')} CREATEDB;"
        ) from None


def ensure_template(server: PostgresServer) -> tuple[str, bool]:
    """The migrated template's name, building it first if needed; True when built now.

    A local file lock keeps this machine's harnesses from building it twice; an advisory
    lock on the server does the same for other machines sharing the server.
    """
    name = template_name()
    server_key = hashlib.sha256(f"{server.where}/{server.url.database}".encode()).hexdigest()

    async def ensure() -> bool:
        conn = await server.connect()
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", _advisory_key(name))
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                return False
            building = f"{name}_building"
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote(building)} WITH (FORCE)")
            await _create_database(server, conn, f"CREATE DATABASE {_quote(building)}")
            await asyncio.to_thread(_migrate, server.database_url(building))
            # The migration's connections may outlive its process by a moment.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                building,
            )
            # The rename makes the template appear complete or not at all.
            await conn.execute(f"ALTER DATABASE {_quote(building)} RENAME TO {_quote(name)}")
            await conn.execute(
                f"ALTER DATABASE {_quote(name)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            )
            return True
        finally:
            await conn.close()  # also releases the advisory lock

    with hold_lock(
        cache_dir() / f"postgres-{server_key[:16]}.lock",
        waiting_for=f"another harness to build the template database {name} on {server.where}",
        timeout=TEMPLATE_BUILD_TIMEOUT_SECONDS,
    ):
        return name, run_coro_as_sync(ensure())


def _migrate(database_url: str) -> None:
    """Run Prefect's migrations on a database, in a child: imports stay out of this process."""
    with tempfile.TemporaryDirectory(prefix="prefect-testkit-migrate-") as home:
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "prefect_testkit._postgres.migrate"],
                env=env,
                capture_output=True,
                text=True,
                timeout=TEMPLATE_BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HarnessStartupError(
                f"Migrating the PostgreSQL template took over {TEMPLATE_BUILD_TIMEOUT_SECONDS:g} s"
            ) from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise HarnessStartupError(
            f"Migrating the PostgreSQL template failed (exit {done.returncode}):\n"
            f"{mask_password(tail)}"
        )


def harness_database_name() -> str:
    """``ptk_<run>_<worker>_<random>``: whose it is, and unique on a shared server."""
    identity = worker_identity()
    parts = [identity.run_id[:12], identity.worker[:24], secrets.token_hex(4)]
    return DATABASE_PREFIX + "_".join(re.sub(r"[^a-z0-9]+", "_", p.lower()) for p in parts)


async def _create_from_template(server: PostgresServer, name: str, template: str) -> None:
    conn = await server.connect()
    try:
        deadline = time.monotonic() + TEMPLATE_BUSY_SECONDS
        while True:
            try:
                sql = f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)}"
                await _create_database(server, conn, sql)
                return
            except asyncpg.ObjectInUseError:
                if time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    continue
                sessions = await conn.fetch(
                    "SELECT pid, usename, application_name FROM pg_stat_activity "
                    "WHERE datname = $1",
                    template,
                )
                who = ", ".join(f"pid {s['pid']} ({s['usename']})" for s in sessions)
                raise HarnessStartupError(
                    f"The template database {template} on {server.where} is in use "
                    f"({who or 'by another session'}) after {TEMPLATE_BUSY_SECONDS:g} s, "
                    "and PostgreSQL copies a template only when nobody is connected to it. "
                    "Close those connections (SELECT pg_terminate_backend(pid) ...); the "
                    "harness itself never connects to the template."
                ) from None
    finally:
        await conn.close()


async def drop_database(server: PostgresServer, name: str) -> None:
    conn = await server.connect()
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        await conn.close()


@dataclass(frozen=True)
class HarnessDatabase:
    name: str
    url: str  # with the password: for the server only
    location: str  # the URL without its password
    from_template: bool


@contextlib.contextmanager
def harness_database(
    server: PostgresServer, directory: Path, *, keep: bool
) -> Iterator[HarnessDatabase]:
    """A new database cloned from the template; dropped on exit unless kept."""
    template, built_now = ensure_template(server)
    name = harness_database_name()
    record = directory / RECORD_NAME
    # Written before the database exists: a harness killed from here on leaves a record
    # that `prefect-testkit clean` follows to drop it.
    payload = {
        "url": server.url.render_as_string(hide_password=False),
        "database": name,
        "local_cluster": server.local_cluster,
    }
    write_private(record, json.dumps(payload), exclusive=True)
    try:
        run_coro_as_sync(_create_from_template(server, name, template))
        yield HarnessDatabase(name, server.database_url(name), server.location(name), not built_now)
    finally:
        if not keep:
            run_coro_as_sync(drop_database(server, name))
            record.unlink(missing_ok=True)


def drop_leftover_database(directory: Path) -> None:
    """``prefect-testkit clean``'s hook: drop the database a dead harness left behind."""
    record = directory / RECORD_NAME
    try:
        payload = json.loads(record.read_text())
    except FileNotFoundError:
        return
    server = server_from_url(payload["url"], str(record), local_cluster=payload["local_cluster"])
    try:
        run_coro_as_sync(drop_database(server, payload["database"]))
    except HarnessStartupError:
        if server.local_cluster:
            # The local cluster is stopped; it drops every leftover when it next starts.
            return
        raise
    logger.info("dropped database %s on %s", payload["database"], server.where)
