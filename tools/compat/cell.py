"""One cell of the matrix, inside its nox session: install, run the suites, write the result.

A cell's virtualenv holds every package of packages/ (not editable), core with the extra of
its Prefect minor, the pinned Prefect and every package's test dependencies. It then runs:

- each package's own tests, as `nox -s tests` runs them (in the package's directory); the
  plugin is switched off (`-p no:prefect_testkit`) for the packages that do not have it;
- the 20-test flow suite (suite/) three ways: `baseline` (Prefect's own harness, as the
  suite's conftest.py is written), `dropin` (prefect_testkit's harness swapped in by the
  `compat.dropin` plugin) and `plugin` (no conftest.py; pytest-prefect-testkit's
  `--prefect-harness-autouse` gives the harness).

`--smoke` runs only the flow suite. Each run's result is written by run_pytest.py; the
cell's, by `run()`, to .nox/compat/cells/<cell>.json, which `report` reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nox
import tomllib
from packaging.requirements import Requirement

from . import matrix

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SUITE = HERE / "suite"
RUN_PYTEST = HERE / "run_pytest.py"
RESULTS = ROOT / ".nox" / "compat" / "cells"
CORE = "prefect-testkit-core"
PLUGIN = "pytest-prefect-testkit"
SUITE_TESTS = 20  # the flow suite's tests: fewer passed is a failure, even with none failed
PACKAGE_TIMEOUT = 1800  # seconds for one package's tests
WAY_TIMEOUT = 600  # seconds for the flow suite, one way
# The flow suite's three ways: pytest arguments, and whether the drop-in plugin is importable.
WAYS: dict[str, tuple[list[str], bool]] = {
    "baseline": (["-p", "no:prefect_testkit"], False),
    "dropin": (["-p", "no:prefect_testkit", "-p", "compat.dropin"], True),
    "plugin": (["--noconftest", "--prefect-harness-autouse"], False),
}
# The libraries whose versions decide whether a cell works; recorded with its result.
VERSIONS_OF = ("prefect", "fastapi", "starlette", "pydantic", "httpx", "uvicorn", "sqlalchemy")

# The cells' result files written by this nox process, for the report session after them.
written: list[Path] = []


def parse_options(posargs: Sequence[str]) -> argparse.Namespace:
    """The cell's options, given after `--`: `nox -s compat -- --smoke`."""
    parser = argparse.ArgumentParser(prog="nox -s compat --", description="one matrix cell")
    parser.add_argument("--smoke", action="store_true", help="only the 20-test flow suite")
    parser.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="run this package's tests (repeatable; default all, or none with --smoke)",
    )
    return parser.parse_args(list(posargs))


def core_extra(core: Path, cell: matrix.Cell) -> str:
    """`<core path>[prefect-3-N]`, after checking that core's pyproject.toml has that extra."""
    extras = tomllib.loads((core / "pyproject.toml").read_text())["project"]
    known = extras.get("optional-dependencies", {})
    if cell.extra not in known:
        raise ValueError(f"{core}/pyproject.toml has no extra {cell.extra!r} (has {list(known)})")
    return f"{core}[{cell.extra}]"


def requirements(
    cell: matrix.Cell, packages: Sequence[str], test_requirements: Sequence[str]
) -> list[str]:
    """What a cell installs: the packages (core with its extra), Prefect, the test tools.

    `packages` are the paths of packages/ (the noxfile's all_packages()); sibling paths in
    `test_requirements` (a group naming prefect-testkit-core) are left to `packages`.
    """
    installs = [core_extra(Path(p), cell) if Path(p).name == CORE else p for p in packages]
    core = next(Path(p) for p in packages if Path(p).name == CORE)
    tools = minor_pins(core, cell, [req for req in test_requirements if req not in packages])
    return list(dict.fromkeys([*installs, f"prefect=={cell.prefect}", *tools]))


def minor_pins(core: Path, cell: matrix.Cell, tools: Sequence[str]) -> list[str]:
    """`tools`, with a pin of core's `test-prefect-3-N` group replacing the tool it names."""
    groups = tomllib.loads((core / "pyproject.toml").read_text()).get("dependency-groups", {})
    pins = {Requirement(pin).name: pin for pin in groups.get(f"test-{cell.extra}", [])}
    return [pins.get(Requirement(tool).name, tool) for tool in tools]


def installed_versions(session: nox.Session) -> dict[str, str]:
    """Python's and the deciding libraries' versions in the cell's virtualenv."""
    code = (
        "import importlib.metadata as m, json, platform\n"
        "def v(name):\n"
        "    try:\n        return m.version(name)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        f"print(json.dumps({{'python': platform.python_version(), "
        f"**{{n: v(n) for n in {list(VERSIONS_OF)!r}}}}}))\n"
    )
    output = session.run("python", "-c", code, silent=True)
    return json.loads(output.strip().splitlines()[-1]) if isinstance(output, str) else {}


def run_pytest(
    session: nox.Session,
    cell: matrix.Cell,
    name: str,
    directory: Path,
    args: Sequence[str],
    *,
    timeout: int,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One pytest run through run_pytest.py, in `directory`; its result."""
    result_file = RESULTS / cell.id / f"{name}.json"
    result_file.unlink(missing_ok=True)
    with session.chdir(directory):
        session.run(
            "python",
            str(RUN_PYTEST),
            f"--name={name}",
            f"--result={result_file}",
            f"--timeout={timeout}",
            "--",
            *args,
            env=env or {},
        )
    if not result_file.is_file():  # only with --install-only, or nox's own --no-install runs
        return {"name": name, "exit_code": None}
    return json.loads(result_file.read_text())


def passed(result: dict[str, Any], expected: int | None = None) -> bool:
    """Exit code 0, nothing failed, and (for the flow suite) every test passed."""
    return (
        result.get("exit_code") == 0
        and not result.get("failed")
        and not result.get("errors")
        and (expected is None or result.get("passed") == expected)
    )


def git_state() -> dict[str, Any]:
    """The commit the cell ran, and whether packages/ or tools/compat/ had changes on top."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "packages", "tools/compat", ":!*latest.json")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "dirty": bool(dirty)}


def run(
    session: nox.Session,
    cell: matrix.Cell,
    options: argparse.Namespace,
    packages: dict[str, Path],
    install_seconds: float,
) -> None:
    """Run the cell's suites (after its install), write its result, fail if anything failed."""
    chosen = options.package or ([] if options.smoke else list(packages))
    unknown = set(chosen) - set(packages)
    if unknown:
        session.error(f"--package {sorted(unknown)}: packages are {sorted(packages)}")
    result: dict[str, Any] = {
        **header(cell, options),
        "versions": installed_versions(session),
        "install_seconds": round(install_seconds, 1),
        "packages": {},
        "ways": {},
    }
    started = time.monotonic()
    for name in chosen:
        # Only the plugin's own tests run with the plugin, as in `nox -s tests`.
        off = [] if name == PLUGIN else ["-p", "no:prefect_testkit"]
        result["packages"][name] = run_pytest(
            session, cell, name, packages[name], off, timeout=PACKAGE_TIMEOUT
        )
    for way, (args, dropin) in WAYS.items():
        env = {"PYTHONPATH": str(HERE.parent)} if dropin else None
        result["ways"][way] = run_pytest(
            session, cell, way, SUITE, args, timeout=WAY_TIMEOUT, env=env
        )
    result["run_seconds"] = round(time.monotonic() - started, 1)
    result["ok"] = all(passed(r) for r in result["packages"].values()) and all(
        passed(r, SUITE_TESTS) for r in result["ways"].values()
    )
    save(result)
    if not result["ok"]:
        session.error(f"{cell.id}: {summary(result)}")
    session.log(f"{cell.id}: {summary(result)}")


def header(cell: matrix.Cell, options: argparse.Namespace) -> dict[str, Any]:
    """What every result of a cell starts with: the cell, the mode, when, and the commit."""
    return {
        "cell": cell.id,
        "prefect": cell.prefect,
        "python": cell.python,
        "extra": cell.extra,
        "mode": mode(options),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **git_state(),
    }


def mode(options: argparse.Namespace) -> str:
    """`full` (every package's tests and the flow suite) or `smoke` (less)."""
    return "full" if not options.smoke and not options.package else "smoke"


def install_failed(
    session: nox.Session, cell: matrix.Cell, options: argparse.Namespace, seconds: float
) -> None:
    """Record a cell whose install failed (the error is in the session's output above)."""
    save(
        {
            **header(cell, options),
            "install_seconds": round(seconds, 1),
            "install_error": "the install failed: see the session's output",
            "packages": {},
            "ways": {},
            "ok": False,
        }
    )
    session.error(f"{cell.id}: the install failed")


def save(result: dict[str, Any]) -> None:
    path = RESULTS / f"{result['cell']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    written.append(path)


def summary(result: dict[str, Any]) -> str:
    """`baseline 20/20 31.0 s, dropin 20/20 12.0 s, ...`: one line per cell."""
    runs = {**result["packages"], **result["ways"]}
    parts = [f"{name} {count(run)} {run.get('wall_seconds', '?')} s" for name, run in runs.items()]
    return ", ".join(parts) or result.get("install_error", "nothing ran")


def count(run: dict[str, Any]) -> str:
    """`20/20`, `18/20`, or what went wrong when pytest wrote no report."""
    if "passed" not in run:
        return "timed out" if run.get("timed_out") else f"no report (exit {run.get('exit_code')})"
    total = run["passed"] + run["failed"] + run["errors"]
    return f"{run['passed']}/{total}" + (f" ({run['skipped']} skipped)" if run["skipped"] else "")
