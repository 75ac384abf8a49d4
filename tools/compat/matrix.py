"""The cells of the compatibility matrix: Prefect releases x Pythons, and each Python's path.

Only the standard library: the noxfile imports this module to list its sessions.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# The one list of Prefect releases the toolkit is tested against: the latest patch of each
# Prefect 3 minor. Core's extra `prefect-3-<minor>` pins the web libraries each one needs.
PREFECT_VERSIONS = (
    "3.0.11",
    "3.1.15",
    "3.2.15",
    "3.3.7",
    "3.4.25",
    "3.5.0",
    "3.6.29",
    "3.7.8",
    "3.8.8",
    "3.9.1",
)
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Cells that cannot exist, and why. Every other cell installs (checked by resolving each
# release's requirements for each Python, and by the cells' runs).
EXCLUDED = {
    ("3.9.1", "3.10"): "Prefect 3.9 requires Python >=3.11 (Requires-Python: >=3.11,<3.16)",
}
# The cells that .ci/run smoke-tests: the oldest and newest Prefect, each on the oldest and
# newest Python it supports.
EDGES_TAG = "compat-edges"


@dataclass(frozen=True)
class Cell:
    prefect: str
    python: str

    @property
    def id(self) -> str:
        return f"prefect-{self.prefect}-py{self.python}"

    @property
    def extra(self) -> str:
        """Core's extra for this Prefect minor: `prefect-3-4` for 3.4.25."""
        major, minor = self.prefect.split(".")[:2]
        return f"prefect-{major}-{minor}"


def cells() -> list[Cell]:
    """Every supported cell, Prefect-major order."""
    return [
        Cell(prefect, python)
        for prefect in PREFECT_VERSIONS
        for python in PYTHONS
        if (prefect, python) not in EXCLUDED
    ]


def edges() -> list[Cell]:
    """The oldest and newest Prefect, each on its oldest and newest supported Python."""
    every = cells()
    chosen = []
    for prefect in (PREFECT_VERSIONS[0], PREFECT_VERSIONS[-1]):
        own = [cell for cell in every if cell.prefect == prefect]
        chosen += [own[0], own[-1]] if len(own) > 1 else own
    return chosen


def tags(cell: Cell) -> list[str]:
    """nox tags, to select cells: `nox -t compat-prefect-3.4.25`, `-t compat-py3.13`."""
    edge = [EDGES_TAG] if cell in edges() else []
    return [f"compat-prefect-{cell.prefect}", f"compat-py{cell.python}", *edge]


def _version_key(path: str) -> tuple[int, ...]:
    """(3, 10, 13) for .../versions/3.10.13/bin/python3.10: the highest patch wins."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(part) for part in found.groups()) if found else (0,)


def _pyenv_roots() -> list[Path]:
    """Where pyenv may keep its Pythons, with or without HOME pointing at the usual home."""
    roots = [os.environ.get("PYENV_ROOT", ""), "~/.pyenv"]
    pyenv = shutil.which("pyenv")
    if pyenv:  # <root>/bin/pyenv, or <root>/libexec/pyenv
        roots.append(str(Path(pyenv).resolve().parents[1]))
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if Path(entry).name == "shims":  # <root>/shims
            roots.append(str(Path(entry).parent))
    return [Path(root).expanduser() for root in dict.fromkeys(roots) if root]


def _uv_python_dirs() -> list[Path]:
    """Where `uv python install` puts its Pythons."""
    data = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    dirs = [os.environ.get("UV_PYTHON_INSTALL_DIR", ""), f"{data}/uv/python"]
    return [Path(d).expanduser() for d in dirs if d]


def find_python(version: str) -> str:
    """The path of a CPython `version` (e.g. "3.10"), or `version` itself when none is found.

    Looks on PATH (skipping pyenv's shims, which fail for a Python that is not pyenv's global
    one), then in pyenv's versions and uv's managed Pythons, whatever HOME is. Given back the
    bare version, nox searches itself and may offer `uv python install`.
    """
    name = f"python{version}"
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(entry) / name
        if Path(entry).name != "shims" and os.access(candidate, os.X_OK):
            return str(candidate)
    found: list[str] = []
    for root in _pyenv_roots():  # <root>/versions/3.10.13/bin/python3.10
        found += glob.glob(str(root / "versions" / f"{version}.*" / "bin" / name))
    for directory in _uv_python_dirs():  # <dir>/cpython-3.10.19-linux-x86_64-gnu/bin/python3.10
        found += glob.glob(str(directory / f"cpython-{version}.*" / "bin" / name))
    # Not 3.1's directories for 3.10's, nor free-threaded (3.13.0t) builds.
    release = re.compile(rf"(cpython-)?{re.escape(version)}\.\d+(-.*)?")
    runnable = [
        path
        for path in found
        if release.fullmatch(Path(path).parents[1].name) and os.access(path, os.X_OK)
    ]
    return max(runnable, key=_version_key) if runnable else version
