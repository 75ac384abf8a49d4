"""The matrix's table: the cells' results printed, and merged into a JSON file.

`nox -s compat_report` runs after the cells of `nox -s compat` (each cell asks for it). The
cells are merged into tools/compat/latest.json, the record the support table is written
from: its `full` list holds each cell's last full run, its `smoke` list each cell's last
`--smoke` or `--package` run; the other cells' entries stay as they were.

    python -m compat.report [RESULT.json ...]   (from tools/; default: every cell's last result)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import cell as cells_
from . import matrix

LATEST = Path(__file__).resolve().parent / "latest.json"
MODES = ("full", "smoke")  # a cell's last result of each is kept
SHORT = {"prefect-testkit-core": "core", "prefect-testkit-logging": "logging"}
SHORT |= {"prefect-testkit-xdist": "xdist", cells_.PLUGIN: "plugin"}


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in paths if path.is_file()]


def order(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Matrix order (Prefect, then Python); cells no longer in the matrix last."""
    rank = {cell.id: i for i, cell in enumerate(matrix.cells())}
    return sorted(results, key=lambda r: (rank.get(r["cell"], len(rank)), r["cell"]))


def way_cell(result: dict[str, Any], way: str) -> str:
    run = result["ways"].get(way)
    if run is None:
        return "-"
    mark = "" if cells_.passed(run, cells_.SUITE_TESTS) else "FAIL "
    return f"{mark}{cells_.count(run)} {run.get('wall_seconds', '?')}s"


def packages_cell(result: dict[str, Any]) -> str:
    if "install_error" in result:
        return "INSTALL FAILED"
    parts = []
    for name, run in result["packages"].items():
        mark = "" if cells_.passed(run) else "FAIL "
        parts.append(f"{mark}{SHORT.get(name, name)} {cells_.count(run)} {run['wall_seconds']}s")
    return ", ".join(parts) or "-"


def table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: one row per cell, one column per way, then the packages' tests."""
    header = ["Prefect", "Python", "baseline", "drop-in", "plugin", "packages (passed/run)"]
    rows = [
        [
            r["prefect"],
            r.get("versions", {}).get("python") or r["python"],
            *(way_cell(r, way) for way in cells_.WAYS),
            packages_cell(r),
        ]
        for r in order(results)
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def merge(path: Path, results: list[dict[str, Any]]) -> None:
    """Replace these cells' entries in the JSON file at `path`, each in its mode's list."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    sections = {mode: {e["cell"]: e for e in data.get(mode, [])} for mode in MODES}
    for result in results:
        sections[result["mode"]][result["cell"]] = result
    data = {
        "about": "nox -s compat: for each Prefect x Python cell, its last full run (every "
        "package's tests and the flow suite) and its last smoke run (tools/compat/README.md)",
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "excluded": [
            {"prefect": prefect, "python": python, "why": why}
            for (prefect, python), why in matrix.EXCLUDED.items()
        ],
        **{mode: order(sections[mode].values()) for mode in MODES},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(paths: list[Path]) -> str:
    """The table of these results (default: every cell's last result); merge them; return it."""
    results = load(paths or sorted(cells_.RESULTS.glob("*.json")))
    if not results:
        return f"no compat results in {cells_.RESULTS}: run `nox -s compat` first"
    merge(LATEST, results)
    ok = sum(1 for r in results if r["ok"])
    return f"{table(results)}\n\n{ok}/{len(results)} cells passed; written to {LATEST}"


if __name__ == "__main__":
    print(main([Path(arg) for arg in sys.argv[1:]]))
