"""Developer sessions for the prefect-testkit monorepo.

nox -s demo        run the example project's tests with the toolkit
nox -s tests       test each package alone, then the cross-package tests
nox -s lint        ruff check and format check (and buildifier, when npm can install it)
nox -s typecheck   mypy --strict on every package's src/
nox -s build       a wheel and an sdist of every package into dist/, checked (tools/release)
nox -s bench       the toolkit against Prefect's own harness, side by side (tools/bench)
nox -s storm       concurrent pytest -n 2 sessions, some SIGKILLed, then checks (tools/storm)
nox -s bazel       bazel test //... (tools/bazel)
nox -s buildifier  check the Bazel files' format and lint (buildifier from npm)
nox -s compat      every package and a flow suite on each Prefect 3 minor x Python (tools/compat)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import nox
import tomllib

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True
# uv skips compiling bytecode by default; the first import of Prefect's server in a fresh
# virtualenv would then compile a thousand modules and outlast a 30 s startup timeout.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
PACKAGES = sorted(p.name for p in PACKAGES_DIR.iterdir() if (p / "pyproject.toml").is_file())
CROSS_PACKAGE = "cross-package"


def siblings(name: str) -> list[str]:
    """The packages of packages/ that package `name` requires (at the monorepo's version)."""
    config = tomllib.loads((PACKAGES_DIR / name / "pyproject.toml").read_text())
    hook = config.get("tool", {}).get("hatch", {}).get("metadata", {}).get("hooks", {})
    return list(hook.get("custom", {}).get("siblings", []))


def local_packages(*names: str) -> list[str]:
    """The paths of these packages of packages/ and of every sibling they require, recursively.

    A package requires its siblings pinned to the monorepo version (`name==X.Y.Z`, VERSION);
    with their paths in the same install, pip and uv take them from here, never from a
    package index (which may hold an unrelated package of that name).
    """
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += siblings(name)
    return [str(PACKAGES_DIR / name) for name in sorted(found)]


def dependency_group(project: Path, group: str) -> list[str]:
    """A pyproject dependency group, with this repository's packages resolved to their paths."""
    groups = tomllib.loads((project / "pyproject.toml").read_text())["dependency-groups"]
    named = [req for req in groups[group] if req in PACKAGES]
    return [req for req in groups[group] if req not in PACKAGES] + local_packages(*named)


def all_packages() -> list[str]:
    return local_packages(*PACKAGES)


# Asked of prefect_testkit.testing inside the session's virtualenv, after the install:
# nox itself runs outside the package virtualenvs and cannot import the toolkit, and a
# copy of the toolkit's PostgreSQL discovery here could disagree with the tests' own.
_POSTGRESQL_NOTE = (
    "from prefect_testkit.testing import postgres_unavailable\n"
    "reason = postgres_unavailable()\n"
    "print('PostgreSQL tests: ' + (f'SKIPPED, {reason}' if reason else 'will run (against "
    "PREFECT_TESTKIT_POSTGRES_URL, or a throwaway local cluster)'))\n"
)


def log_postgresql_note(session: nox.Session) -> None:
    """Say whether the backend-specific tests will use PostgreSQL or be skipped."""
    note = session.run("python", "-c", _POSTGRESQL_NOTE, silent=True)
    if isinstance(note, str):  # None when nox only installs (--install-only)
        session.log(note.strip())


@nox.session
@nox.parametrize("target", [*PACKAGES, CROSS_PACKAGE])
def tests(session: nox.Session, target: str) -> None:
    """Test one package in a virtualenv with only it and its declared dependencies."""
    if target == CROSS_PACKAGE:
        session.install(*all_packages(), *dependency_group(ROOT, "test"))
        log_postgresql_note(session)
        session.run("pytest", "tests", *session.posargs)
        return
    package = PACKAGES_DIR / target
    # Not editable: the tests import what a user would install, so a file missing from
    # the wheel or an undeclared dependency fails here. Its siblings come from packages/.
    session.install(*dict.fromkeys([*local_packages(target), *dependency_group(package, "test")]))
    if target != "prefect-testkit-xdist":  # the only package without the harness
        log_postgresql_note(session)
    session.chdir(package)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff; check the Bazel files with buildifier if possible."""
    session.install(*dependency_group(ROOT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    run_buildifier(session, required=False)


# buildifier (the formatter and linter of Bazel files), from npm: the package carries the
# binaries for Linux and macOS, so installing it downloads nothing else. Pinned, as ruff is.
BUILDIFIER_NPM = "@bazel/buildifier@8.2.1"
# Bazel 4's Python and shell rules are native: loading them from rules_python / rules_shell, as
# these two warnings ask, would need repositories that Bazel 4 cannot use offline.
BUILDIFIER_ARGS = ["--mode=check", "--lint=warn", "--warnings=-native-py,-native-sh-binary"]


def bazel_files() -> list[str]:
    """WORKSPACE, BUILD.bazel and .bzl files of the repository (not of .nox, bazel-*, ...)."""
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if not d.startswith((".", "bazel-", "node_modules"))]
        for name in files:
            if name in ("WORKSPACE", "BUILD.bazel", "BUILD") or name.endswith(".bzl"):
                found.append(os.path.relpath(os.path.join(directory, name), ROOT))
    return sorted(found)


def run_buildifier(session: nox.Session, *, required: bool) -> None:
    """Check the Bazel files' format and lint with the pinned buildifier, installed by npm.

    Without npm, a `buildifier` on PATH is used; without either, the check is skipped with a
    warning (`required=False`, the lint session) or fails (`nox -s buildifier`, which CI runs).
    """
    prefix = Path(session.create_tmp()) / "buildifier"
    buildifier = prefix / "node_modules" / ".bin" / "buildifier"
    npm = shutil.which("npm")
    version = BUILDIFIER_NPM.rpartition("@")[2]
    installed = prefix / "node_modules" / "@bazel" / "buildifier" / "package.json"
    if npm and not (
        installed.is_file() and json.loads(installed.read_text()).get("version") == version
    ):
        npm_args = ["--no-save", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
        session.run(
            npm, "install", "--prefix", str(prefix), *npm_args, BUILDIFIER_NPM, external=True
        )
    if not buildifier.exists():
        on_path = shutil.which("buildifier")
        if on_path is None:
            message = f"buildifier: neither npm (to install {BUILDIFIER_NPM}) nor buildifier found"
            if required:
                session.error(message)
            session.warn(message + "; Bazel files NOT checked")
            return
        buildifier = Path(on_path)
    session.log(f"buildifier: {buildifier} (fix with: buildifier --lint=fix -r .)")
    session.run(str(buildifier), *BUILDIFIER_ARGS, *bazel_files(), external=True)


@nox.session(venv_backend="none")
def buildifier(session: nox.Session) -> None:
    """Check the Bazel files with buildifier (installed with npm into .nox); fails without it."""
    run_buildifier(session, required=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check every package's src/ with mypy --strict."""
    session.install(*all_packages(), *dependency_group(ROOT, "typecheck"))
    for name in PACKAGES:
        session.run("mypy", str(PACKAGES_DIR / name / "src"))


@nox.session
def build(session: nox.Session) -> None:
    """Build every package's sdist and wheel into dist/; check them (tools/release)."""
    session.install(*dependency_group(ROOT, "release"))
    script = ROOT / "tools" / "release" / "distributions.py"
    session.run("python", str(script), "--out", str(ROOT / "dist"), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the example project's test suite against the toolkit and show what it did."""
    examples = ROOT / "examples"
    session.install(*all_packages(), str(examples), *dependency_group(examples, "test"))
    session.chdir(examples)
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark the toolkit against Prefect's prefect_test_harness (tools/bench/run.py).

    Default: the full run of issue 6 (3 repetitions, 200 three-task flows per harness);
    pass ``-- --quick`` for a smoke run or ``-- --help`` for the options, and
    ``-- --prefect 3.0.11`` to measure on a release of the compatibility matrix (with its
    working set) instead of the newest Prefect. The upstream suites of the real_suites
    workload (tools/bench/upstream.py) are installed when their release supports that Prefect.
    """
    parser = argparse.ArgumentParser(prog="nox -s bench --", add_help=False)
    parser.add_argument("--prefect", choices=compat_matrix.PREFECT_VERSIONS)
    options, args = parser.parse_known_args(session.posargs)
    # Not editable: measure what a user would install.
    # The root "test" group brings pytest, pytest-xdist and psutil; matplotlib draws the chart;
    # pip downloads the real suites' sdists, whose integrations and test imports come here.
    suites = bench_upstream.requirements(bench_upstream.installable(options.prefect))
    tools = list(dict.fromkeys([*dependency_group(ROOT, "test"), "matplotlib", "pip", *suites]))
    if options.prefect:
        cell = compat_matrix.Cell(options.prefect, platform.python_version())
        session.install(*compat_cell.requirements(cell, all_packages(), tools))
    else:
        session.install(*all_packages(), *tools)
    session.run("python", str(ROOT / "tools" / "bench" / "run.py"), *args)


@nox.session(venv_backend="none")
def bazel(session: nox.Session) -> None:
    """Build and test every Bazel target (tools/bazel/README.md); arguments go to `bazel test`.

    Targets among the arguments replace `//...`; flags are added to it.

    Needs Bazel 4 on PATH: Debian's `apt-get install -y bazel-bootstrap`. Runs
    `bazel test //...`, which itself makes the tests' virtualenv from
    tools/bazel/requirements.txt on the first run; nothing else is installed.
    """
    if shutil.which("bazel") is None:
        session.error(
            "bazel is not on PATH; install Bazel 4 with `apt-get install -y bazel-bootstrap` "
            "(Debian), then run `nox -s bazel` again"
        )
    # `nox -s bazel -- //packages/prefect-testkit-xdist/... --test_output=all`: targets named
    # after `--` replace //... (flags alone keep it).
    named = any(arg.startswith(("//", "@", ":")) for arg in session.posargs)
    session.run("bazel", "test", *([] if named else ["//..."]), *session.posargs, external=True)


SHORT_STORM = "--duration 90 --concurrency 3 --kill-probability 0.3 --seed 1"


@nox.session
def storm(session: nox.Session) -> None:
    """Stress run (tools/storm/README.md): concurrent pytest -n 2 sessions, some SIGKILLed.

    Default: a short run for CI; pass options after ``--`` for a long one, e.g.
    ``nox -s storm -- --duration 600 --concurrency 6 --kill-probability 0.3 --seed 7``.
    """
    # Not editable: stress what a user would install. The root "test" group brings pytest,
    # pytest-xdist and psutil.
    session.install(*all_packages(), *dependency_group(ROOT, "test"))
    args = session.posargs or SHORT_STORM.split()
    session.run("python", str(ROOT / "tools" / "storm" / "run.py"), *args)


# The compatibility matrix (tools/compat/README.md): its cells, and the code of a cell.
# And the benchmark's upstream suites (tools/bench/upstream.py), for its installs.
sys.path.insert(0, str(ROOT / "tools"))
from bench import upstream as bench_upstream  # noqa: E402
from compat import cell as compat_cell  # noqa: E402
from compat import matrix as compat_matrix  # noqa: E402
from compat import report as compat_report_  # noqa: E402

COMPAT_CELLS = [
    nox.param(
        compat_matrix.find_python(cell.python),
        cell,
        id=cell.id,
        tags=compat_matrix.tags(cell),
    )
    for cell in compat_matrix.cells()
]


@nox.session
@nox.parametrize(["python", "cell"], COMPAT_CELLS)
def compat(session: nox.Session, cell: compat_matrix.Cell) -> None:
    """One Prefect x Python cell: every package's tests and the flow suite three ways.

    `-- --smoke`: the flow suite only; `-t compat-edges`: the oldest and newest cells.
    """
    session.notify("compat_report", posargs=[])
    options = compat_cell.parse_options(session.posargs)
    tools = [req for name in PACKAGES for req in dependency_group(PACKAGES_DIR / name, "test")]
    started = time.monotonic()
    try:
        session.install(*compat_cell.requirements(cell, all_packages(), tools))
    except nox.command.CommandFailed:
        compat_cell.install_failed(session, cell, options, time.monotonic() - started)
    installed = time.monotonic() - started
    if not options.smoke or options.package:
        log_postgresql_note(session)
    packages = {name: PACKAGES_DIR / name for name in PACKAGES}
    compat_cell.run(session, cell, options, packages, installed)


@nox.session(venv_backend="none")
def compat_report(session: nox.Session) -> None:
    """The matrix's table from the cells' last results; merged into tools/compat/latest.json."""
    print(compat_report_.main(compat_cell.written or [Path(p) for p in session.posargs]))
