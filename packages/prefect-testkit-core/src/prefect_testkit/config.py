"""Every setting of the harness in one place: its default, its environment variable, how it
is parsed and validated, and the message a bad value gets.

`HarnessConfig.resolve` reads them all before a harness starts anything, so that a bad value
fails at once; the modules that need one setting later (the server factory, the template
cache, the server child) call the same reader, never their own. The plugin maps its options
onto the same readers, and the README's table of variables is tested against `VARIABLES`.
This module imports no Prefect.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from prefect_testkit._errors import HarnessConfigError
from prefect_testkit_xdist import AllocatorConfigError, parse_port_range

PortRange = range | tuple[int, int] | str

DATABASE_BACKENDS = ("sqlite", "postgresql")
DEFAULT_STARTUP_TIMEOUT = 30.0
DEFAULT_TEARDOWN_TIMEOUT = 30.0
DEFAULT_FACTORY_IDLE_SECONDS = 300.0

DATABASE_ENV = "PREFECT_TESTKIT_DATABASE"
POSTGRES_URL_ENV = "PREFECT_TESTKIT_POSTGRES_URL"
POSTGRES_BIN_ENV = "PREFECT_TESTKIT_POSTGRES_BIN"
TEARDOWN_TIMEOUT_ENV = "PREFECT_TESTKIT_TEARDOWN_TIMEOUT"
API_AUTH_ENV = "PREFECT_TESTKIT_API_AUTH"
SQLITE_IMMEDIATE_ENV = "PREFECT_TESTKIT_SQLITE_IMMEDIATE"
FACTORY_ENV = "PREFECT_TESTKIT_SERVER_FACTORY"
FACTORY_IDLE_ENV = "PREFECT_TESTKIT_FACTORY_IDLE_SECONDS"
TEMPLATE_ENV = "PREFECT_TESTKIT_TEMPLATE_CACHE"
CACHE_DIR_ENV = "PREFECT_TESTKIT_CACHE_DIR"
HIDE_FROM_MOCKS_ENV = "PREFECT_TESTKIT_HIDE_FROM_HTTP_MOCKS"
ALLOW_OTHER_APIS_ENV = "PREFECT_TESTKIT_ALLOW_OTHER_APIS"


@dataclass(frozen=True)
class Variable:
    """An environment variable the harness reads, as the README documents it."""

    name: str
    default: str
    meaning: str


# The harness's variables; the lease allocator's (lock dir, port range, lease timeout) are
# documented with it, in prefect-testkit-xdist.
VARIABLES = (
    Variable(DATABASE_ENV, "`sqlite`", "the database backend: `sqlite` or `postgresql`"),
    Variable(POSTGRES_URL_ENV, "unset", "a PostgreSQL server to create databases on"),
    Variable(POSTGRES_BIN_ENV, "`PATH`, `/usr/lib/postgresql/*/bin`", "PostgreSQL's binaries"),
    Variable(TEARDOWN_TIMEOUT_ENV, "`30`", "seconds that leaving a harness may take"),
    Variable(API_AUTH_ENV, "`true`", "a random API auth string per harness"),
    Variable(SQLITE_IMMEDIATE_ENV, "`true`", "SQLite transactions begin IMMEDIATE"),
    Variable(FACTORY_ENV, "`true`", "fork servers from the pre-imported server factory"),
    Variable(FACTORY_IDLE_ENV, "`300`", "seconds an idle server factory lives"),
    Variable(TEMPLATE_ENV, "`true`", "copy a migrated template database"),
    Variable(CACHE_DIR_ENV, "`<lock dir>/cache`", "where the template databases are kept"),
    Variable(
        HIDE_FROM_MOCKS_ENV, "`true`", "the harness's API traffic bypasses HTTP-mocking libraries"
    ),
    Variable(
        ALLOW_OTHER_APIS_ENV, "`false`", "Prefect clients may reach APIs other than the harness's"
    ),
)


def variables_table() -> str:
    """The README's table of the harness's variables, from `VARIABLES`."""
    rows = [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(["| variable | default | what |", "| --- | --- | --- |", *rows])


# One boolean grammar for variables and the plugin's ini options.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(raw: str) -> bool | None:
    """True or False for a recognised spelling (any case, any surrounding space), else None."""
    word = raw.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment variable; anything but a recognised spelling is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = parse_flag(raw)
    if value is None:
        raise HarnessConfigError(f"{name}={raw!r} is not a boolean; use true or false")
    return value


def seconds(value: object, source: str, example: str, *, allow_zero: bool = False) -> float:
    """``value`` as seconds, or an error naming ``source`` and an ``example`` of a fix."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HarnessConfigError(
            f"{source} must be a positive number of seconds, got {value!r} "
            f"({type(value).__name__}); {example}"
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "a number of seconds >= 0" if allow_zero else "a positive, finite number of seconds"
        raise HarnessConfigError(f"{source} must be {bound}, got {value!r}; {example}")
    return float(value)


def env_seconds(name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    source, example = f"{name}={raw!r}", f"set e.g. {name}={default:g}"
    return seconds(parse_number(raw, source, example), source, example, allow_zero=allow_zero)


def parse_number(raw: str, source: str, example: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise HarnessConfigError(f"{source} must be a number of seconds; {example}") from None


def read_startup_timeout(value: object) -> float:
    """``server_startup_timeout``; None means Prefect's own setting, as in Prefect's harness."""
    source = "server_startup_timeout"
    if value is None:
        import prefect.settings

        setting = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        value = prefect.settings.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        source = f"{setting} (used because server_startup_timeout is None)"
    return seconds(value, source, f"pass e.g. server_startup_timeout={DEFAULT_STARTUP_TIMEOUT:g}")


def read_teardown_timeout(value: object) -> float:
    if value is None:
        return env_seconds(TEARDOWN_TIMEOUT_ENV, DEFAULT_TEARDOWN_TIMEOUT)
    example = f"pass e.g. teardown_timeout={DEFAULT_TEARDOWN_TIMEOUT:g}"
    return seconds(value, "teardown_timeout", example)


def read_port_range(value: PortRange | None) -> range | None:
    """None leaves the choice to the allocator (``PREFECT_TESTKIT_PORT_RANGE`` or its default)."""
    if value is None:
        return None
    try:
        return parse_port_range(value)
    except AllocatorConfigError as exc:
        raise HarnessConfigError(f"port_range: {exc}") from exc


def read_database(value: object) -> str:
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


def read_initial_database(value: object) -> Path | None:
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


def read_factory_idle() -> float:
    return env_seconds(FACTORY_IDLE_ENV, DEFAULT_FACTORY_IDLE_SECONDS, allow_zero=True)


def read_cache_dir() -> Path | None:
    """``PREFECT_TESTKIT_CACHE_DIR``, or None for the default under the lock directory."""
    raw = os.environ.get(CACHE_DIR_ENV)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise HarnessConfigError(f"{CACHE_DIR_ENV}={raw!r} must be an absolute path")
    return path


def mask_password(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def database_description(database: str | None) -> str:
    """Which database a harness with this ``database`` argument would use, for humans."""
    try:
        backend = read_database(database)
    except HarnessConfigError as exc:
        return f"invalid ({exc})"
    if backend == "sqlite":
        return "SQLite"
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    return f"PostgreSQL on {mask_password(url) if url else 'a throwaway local cluster'}"


@dataclass(frozen=True)
class HarnessConfig:
    """What one harness was asked for, every value validated."""

    startup_timeout: float
    teardown_timeout: float
    port_range: range | None
    keep_files: bool
    initial_database: Path | None
    database: str  # one of DATABASE_BACKENDS
    api_auth: bool
    template_cache: bool
    server_factory: bool
    hide_from_http_mocks: bool
    allow_other_apis: bool

    @classmethod
    def resolve(
        cls,
        server_startup_timeout: object = DEFAULT_STARTUP_TIMEOUT,
        *,
        port_range: object = None,
        keep_files: object = False,
        initial_database: object = None,
        database: object = None,
        teardown_timeout: object = None,
    ) -> HarnessConfig:
        """Validate ``prefect_test_harness``'s arguments and every variable it reads."""
        if not isinstance(keep_files, bool):
            raise HarnessConfigError(f"keep_files must be True or False, got {keep_files!r}")
        config = cls(
            startup_timeout=read_startup_timeout(server_startup_timeout),
            teardown_timeout=read_teardown_timeout(teardown_timeout),
            port_range=read_port_range(port_range),  # type: ignore[arg-type]
            keep_files=keep_files,
            initial_database=read_initial_database(initial_database),
            database=read_database(database),
            api_auth=env_flag(API_AUTH_ENV, default=True),
            template_cache=env_flag(TEMPLATE_ENV, default=True),
            server_factory=env_flag(FACTORY_ENV, default=True),
            hide_from_http_mocks=env_flag(HIDE_FROM_MOCKS_ENV, default=True),
            allow_other_apis=env_flag(ALLOW_OTHER_APIS_ENV, default=False),
        )
        # Read by the server child and the factory: a bad value fails here, not there.
        env_flag(SQLITE_IMMEDIATE_ENV, default=True)
        read_factory_idle()
        read_cache_dir()
        if config.database == "postgresql" and config.initial_database is not None:
            raise HarnessConfigError(
                "initial_database is a SQLite file and cannot seed a PostgreSQL database; "
                "drop initial_database or use database='sqlite'"
            )
        return config
