"""Command-line and ini options, validated once at startup into `PluginOptions`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prefect_testkit import HarnessConfigError
from prefect_testkit.config import (
    DEFAULT_STARTUP_TIMEOUT,
    parse_flag,
    parse_number,
    read_database,
    read_port_range,
    seconds,
)
from prefect_testkit_xdist import DEFAULT_PORT_RANGE
from pytest_prefect_testkit._sharding import ShardSpec, parse_shard

AUTOUSE_INI = "prefect_harness_autouse"
TIMEOUT_INI = "prefect_startup_timeout"
PORT_RANGE_INI = "prefect_port_range"
DATABASE_INI = "prefect_database"
PRIVATE_HOME_INI = "prefect_private_home"

AUTOUSE_FLAG = "--prefect-harness-autouse"
DISABLE_FLAG = "--no-prefect-harness"
TIMEOUT_FLAG = "--prefect-startup-timeout"
PORT_RANGE_FLAG = "--prefect-port-range"
KEEP_DB_FLAG = "--prefect-keep-db"
SHARD_FLAG = "--prefect-shard"
DATABASE_FLAG = "--prefect-database"


@dataclass(frozen=True)
class PluginOptions:
    """Everything the plugin was told, after validation."""

    autouse: bool
    disabled: bool
    startup_timeout: float
    port_range: range | None
    keep_db: bool
    shard: ShardSpec | None
    database: str | None  # None: PREFECT_TESTKIT_DATABASE or sqlite, as the harness decides
    private_home: bool  # a private Prefect home and no profile, unless the user chose one


options_key = pytest.StashKey[PluginOptions]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("prefect-testkit", "Prefect test harness (pytest-prefect-testkit)")
    group.addoption(
        AUTOUSE_FLAG,
        action="store_true",
        default=False,
        help=f"Give every test the session Prefect harness (same as ini {AUTOUSE_INI} = true).",
    )
    group.addoption(
        DISABLE_FLAG,
        action="store_true",
        default=False,
        dest="prefect_no_harness",
        help="Start no Prefect test server; tests that need the harness are skipped.",
    )
    group.addoption(
        TIMEOUT_FLAG,
        default=None,
        metavar="SECONDS",
        help=f"Seconds to wait for the test server to become healthy "
        f"(ini {TIMEOUT_INI}; default {DEFAULT_STARTUP_TIMEOUT:g}).",
    )
    group.addoption(
        PORT_RANGE_FLAG,
        default=None,
        metavar="LOW-HIGH",
        help=f"Ports the test servers may use, inclusive (ini {PORT_RANGE_INI}; default "
        f"PREFECT_TESTKIT_PORT_RANGE or {DEFAULT_PORT_RANGE[0]}-{DEFAULT_PORT_RANGE[-1]}).",
    )
    group.addoption(
        KEEP_DB_FLAG,
        action="store_true",
        default=False,
        help="Keep each worker's database and server log after the run and print where.",
    )
    group.addoption(
        DATABASE_FLAG,
        default=None,
        metavar="BACKEND",
        help=f"The test servers' database: sqlite or postgresql (ini {DATABASE_INI}; "
        "default PREFECT_TESTKIT_DATABASE or sqlite). PostgreSQL uses "
        "PREFECT_TESTKIT_POSTGRES_URL, else a throwaway local cluster.",
    )
    group.addoption(
        SHARD_FLAG,
        default=None,
        metavar="INDEX/TOTAL",
        help="Run only the tests of shard INDEX out of TOTAL (0-based), split by a stable "
        "hash of the node id. Under `bazel test` the TEST_SHARD_* variables do this.",
    )
    # A string, not type="bool": pytest's own error for a bad bool does not name the option.
    parser.addini(
        AUTOUSE_INI,
        type="string",
        default="false",
        help="Give every test the session Prefect harness.",
    )
    parser.addini(
        TIMEOUT_INI,
        type="string",
        default="",
        help=f"Seconds to wait for the test server to become healthy "
        f"(default {DEFAULT_STARTUP_TIMEOUT:g}).",
    )
    parser.addini(
        PORT_RANGE_INI,
        type="string",
        default="",
        help="Ports the test servers may use, LOW-HIGH inclusive.",
    )
    parser.addini(
        DATABASE_INI,
        type="string",
        default="",
        help="The test servers' database: sqlite or postgresql.",
    )
    parser.addini(
        PRIVATE_HOME_INI,
        type="string",
        default="true",
        help="Give the session a private Prefect home and no profile (unless PREFECT_HOME or "
        "PREFECT_PROFILES_PATH is set), so that ~/.prefect is neither created nor read.",
    )


def read_options(config: pytest.Config) -> PluginOptions:
    """Validate every option; a bad value is a `pytest.UsageError` naming it and the fix."""
    return PluginOptions(
        autouse=_autouse(config),
        disabled=bool(config.getoption("prefect_no_harness")),
        startup_timeout=_startup_timeout(config),
        port_range=_port_range(config),
        keep_db=bool(config.getoption("prefect_keep_db")),
        shard=_shard(config),
        database=_database(config),
        private_home=private_home_enabled(config),
    )


def _autouse(config: pytest.Config) -> bool:
    return bool(config.getoption("prefect_harness_autouse")) or _ini_flag(
        config, AUTOUSE_INI, default=False
    )


def private_home_enabled(config: pytest.Config) -> bool:
    """The ini option ``prefect_private_home``; read before the conftests are loaded."""
    return _ini_flag(config, PRIVATE_HOME_INI, default=True)


def _ini_flag(config: pytest.Config, name: str, *, default: bool) -> bool:
    raw = str(config.getini(name))
    value = parse_flag(raw) if raw.strip() else default
    if value is None:
        raise pytest.UsageError(
            f"ini option {name}={raw!r} is not a boolean; set it to true or false"
        )
    return value


def _cli_or_ini(config: pytest.Config, dest: str, flag: str, ini: str) -> tuple[str, str] | None:
    """The raw value and a name for it in messages, or None when neither is given."""
    value = config.getoption(dest)
    if value is not None:
        return str(value), flag
    raw = config.getini(ini)
    text = raw.strip() if isinstance(raw, str) else str(raw)
    if text:
        return text, f"ini option {ini}"
    return None


def _startup_timeout(config: pytest.Config) -> float:
    given = _cli_or_ini(config, "prefect_startup_timeout", TIMEOUT_FLAG, TIMEOUT_INI)
    if given is None:
        return DEFAULT_STARTUP_TIMEOUT
    raw, source = given
    try:
        return seconds(parse_number(raw, source, ""), source, "")
    except HarnessConfigError:
        raise pytest.UsageError(
            f"{source}={raw!r} is not a positive number of seconds; pass e.g. "
            f"{TIMEOUT_FLAG}=60 (the default is {DEFAULT_STARTUP_TIMEOUT:g})"
        ) from None


def _port_range(config: pytest.Config) -> range | None:
    given = _cli_or_ini(config, "prefect_port_range", PORT_RANGE_FLAG, PORT_RANGE_INI)
    if given is None:
        return None
    raw, source = given
    try:
        return read_port_range(raw)
    except HarnessConfigError as exc:
        raise pytest.UsageError(
            f"{source}={raw!r} is not a usable port range ({exc.__cause__}); pass LOW-HIGH with "
            f"1 <= LOW <= HIGH <= 65535, e.g. {PORT_RANGE_FLAG}=8000-8999"
        ) from None


def _shard(config: pytest.Config) -> ShardSpec | None:
    raw = config.getoption("prefect_shard")
    if raw is None:
        return None
    try:
        return parse_shard(str(raw))
    except ValueError as exc:
        raise pytest.UsageError(f"{SHARD_FLAG}={raw!r}: {exc}") from None


def _database(config: pytest.Config) -> str | None:
    given = _cli_or_ini(config, "prefect_database", DATABASE_FLAG, DATABASE_INI)
    if given is None:
        return None
    raw, source = given
    try:
        return read_database(raw)
    except HarnessConfigError:
        raise pytest.UsageError(
            f"{source}={raw!r} is not a database backend; use sqlite or postgresql, e.g. "
            f"{DATABASE_FLAG}=postgresql"
        ) from None
