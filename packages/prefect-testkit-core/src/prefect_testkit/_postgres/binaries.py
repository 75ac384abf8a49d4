"""Finding PostgreSQL's server binaries, for the local cluster. Imports no Prefect, so that
test suites (see `prefect_testkit.testing`) can ask whether PostgreSQL is there cheaply."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prefect_testkit._errors import HarnessConfigError, HarnessStartupError
from prefect_testkit.config import POSTGRES_BIN_ENV

REQUIRED_BINARIES = ("initdb", "postgres", "pg_isready")
INSTALL_HINT = (
    "Install PostgreSQL's server (Debian/Ubuntu: apt install postgresql; Fedora: dnf install "
    "postgresql-server; macOS: brew install postgresql), point PREFECT_TESTKIT_POSTGRES_BIN "
    "at the directory holding initdb and postgres, or name a running server in "
    "PREFECT_TESTKIT_POSTGRES_URL."
)


def _has_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED_BINARIES)


def find_binaries() -> Path:
    """The directory with initdb, postgres and pg_isready, or an error saying what to install."""
    configured = os.environ.get(POSTGRES_BIN_ENV)
    if configured is not None:
        directory = Path(configured)
        if not _has_binaries(directory):
            raise HarnessConfigError(
                f"{POSTGRES_BIN_ENV}={configured!r} does not hold PostgreSQL's "
                f"{', '.join(REQUIRED_BINARIES)}. {INSTALL_HINT}"
            )
        return directory
    candidates = [
        Path(os.path.realpath(found)).parent
        for name in ("postgres", "initdb", "pg_ctl")
        if (found := shutil.which(name)) is not None
    ]
    # Debian and Ubuntu keep the server binaries off PATH, one directory per major version.
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]
    for directory in candidates:
        if _has_binaries(directory):
            return directory
    raise HarnessStartupError(
        "The harness needs a PostgreSQL server and none is configured: "
        "PREFECT_TESTKIT_POSTGRES_URL is unset and PostgreSQL's server binaries "
        f"({', '.join(REQUIRED_BINARIES)}) are not installed. {INSTALL_HINT}"
    )
