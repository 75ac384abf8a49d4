"""The upstream suites of the real-suites workload: which releases, what they need, fetching.

Standard library only: noxfile.py reads the requirements from here before the bench's
virtualenv exists.

Each suite is the ``tests/`` directory of a released Prefect integration, taken from that
release's sdist on the package index pip is configured with (the sdist holds the tests
exactly as they are in Prefect's repository at the release's tag), with the pytest
configuration of the same sdist (its ``pyproject.toml``). The tests import the integration
from the bench's virtualenv, where nox installs the same release; only ``tests/`` and
``pyproject.toml`` are unpacked, so the sdist's own copy of the package cannot shadow it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Suite:
    """One integration's released test suite."""

    distribution: str
    version: str
    # The release's oldest Prefect (its `Requires-Dist: prefect>=`), as (major, minor, patch).
    min_prefect: tuple[int, int, int]
    # What its tests import beyond the integration, from its `dev` dependency group.
    test_requirements: tuple[str, ...] = ()
    # Tests left out on every side (`--deselect`, node id prefixes), each with the reason.
    deselect: tuple[tuple[str, str], ...] = ()

    def pytest_args(self) -> list[str]:
        """`--deselect` for its own and the common left-out tests."""
        return [arg for test, _ in (*DESELECT, *self.deselect) for arg in ("--deselect", test)]

    @property
    def name(self) -> str:
        return f"{self.distribution}-{self.version}"

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


# The tests of every suite use pytest-asyncio (asyncio_mode = "auto") and pytest-env
# (PREFECT_TEST_MODE=1); -n 2 needs pytest-xdist.
COMMON_TEST_REQUIREMENTS = ("pytest>=8.3", "pytest-asyncio>=1.0", "pytest-env>=1.1")

BLOCK_STANDARDS = "tests/test_block_standards.py::TestAllBlocksAdhereToStandards::"
# Left out of every suite: they fail whatever the harness, for want of what this bench
# does not give them. Pillow is installed (matplotlib needs it), which enables this test.
DESELECT = (
    (f"{BLOCK_STANDARDS}test_has_a_valid_image", "downloads the block's logo from the internet"),
)

# Suites that need no service beyond the machine (no database server, no cloud account).
SUITES = (
    Suite("prefect-slack", "0.4.0", (3, 0, 0)),
    Suite("prefect-sqlalchemy", "0.6.1", (3, 6, 17), ("aiosqlite>=0.20",)),
    Suite(
        "prefect-shell",
        "0.3.7",
        (3, 6, 17),
        deselect=tuple(
            (
                f"{BLOCK_STANDARDS}{test}[JobBlock",
                "the generic JobBlock[list[str]] in Prefect's block registry has no "
                "description or documentation URL (fails with Prefect's harness too)",
            )
            for test in ("test_has_a_description", "test_has_a_documentation_url")
        ),
    ),
)


def installable(prefect_version: str | None) -> list[Suite]:
    """The suites whose release supports this Prefect (None: the newest, so all)."""
    if prefect_version is None:
        return list(SUITES)
    wanted = tuple(int(part) for part in prefect_version.split(".")[:3])
    return [suite for suite in SUITES if suite.min_prefect <= wanted]


def installed_version(suite: Suite) -> str | None:
    """The version of the suite's integration installed here, if any."""
    try:
        return metadata.version(suite.distribution)
    except metadata.PackageNotFoundError:
        return None


def installed() -> list[Suite]:
    """The suites whose release is the one installed here."""
    return [suite for suite in SUITES if installed_version(suite) == suite.version]


def requirements(suites: list[Suite]) -> list[str]:
    """What nox installs for these suites: the releases and their tests' imports."""
    extra = [req for suite in suites for req in suite.test_requirements]
    found = [suite.requirement for suite in suites] + (
        [*COMMON_TEST_REQUIREMENTS, *extra] if suites else []
    )
    return list(dict.fromkeys(found))


def fetch(suite: Suite, into: Path) -> Path:
    """Download the release's sdist and unpack its tests; return the suite's directory.

    The directory holds ``tests/`` and ``pyproject.toml`` (its pytest configuration);
    pytest runs there. pip downloads from whatever index it is configured to use.
    """
    downloads = into / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "--dest", str(downloads), suite.requirement], check=True)
    prefix = f"{suite.distribution.replace('-', '_')}-{suite.version}"
    sdist = downloads / f"{prefix}.tar.gz"
    target = into / suite.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(into / prefix, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        members = [
            member
            for member in archive.getmembers()
            if member.name == f"{prefix}/pyproject.toml"
            or member.name.startswith(f"{prefix}/tests/")
        ]
        if not any(member.name.endswith(".py") for member in members):
            raise RuntimeError(f"{sdist.name} holds no tests/ directory")
        archive.extractall(into, members=members, filter="data")
    (into / prefix).rename(target)
    return target
