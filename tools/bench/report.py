"""Targets, the stdout table, the JSON result file and the chart."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads import FLOOR, PREFECT, TOOLKIT, Samples


@dataclass(frozen=True)
class Target:
    """A bound on the ratio toolkit/Prefect, and optionally on the toolkit's own median."""

    max_ratio: float
    strict: bool = False  # "<" instead of "<="
    max_toolkit: float | None = None  # absolute bound, in the workload's unit
    zero_503: bool = False

    def describe(self, unit: str) -> str:
        text = f"{'<' if self.strict else '<='} {self.max_ratio:g}"
        if self.max_toolkit is not None:
            text += f", < {self.max_toolkit * 1000:g} ms" if unit == "s" else f", < {unit}"
        if self.zero_503:
            text += ", 0x503"
        return text


# From issue 6. Workloads without a target are reported for information.
TARGETS: dict[str, Target] = {
    "entry_warm": Target(0.25),
    "clean_db": Target(0.01, max_toolkit=0.1),
    "trivial_flow": Target(0.15),
    "three_task_flow": Target(0.15, zero_503=True),
    "suite_seq": Target(0.25),
    "suite_n2": Target(0.25),
    "server_memory": Target(1.0),
    "four_workers_memory": Target(4.0, strict=True),
}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(samples: Samples) -> dict[str, Any]:
    toolkit, prefect = _median(samples.toolkit), _median(samples.prefect)
    ratio = toolkit / prefect if toolkit is not None and prefect else None
    target = TARGETS.get(samples.name)
    passed: bool | None = None
    if samples.errors or ratio is None:
        status = "FAILED" if samples.errors else "no data"
    elif target is None:
        status = "-"
    else:
        passed = ratio < target.max_ratio if target.strict else ratio <= target.max_ratio
        if target.max_toolkit is not None and toolkit is not None:
            passed = passed and toolkit < target.max_toolkit
        if target.zero_503:
            passed = passed and samples.extra.get("retry_503", {}).get(TOOLKIT, 0) == 0
        status = "pass" if passed else "FAIL"
    row = {
        "workload": samples.name,
        "unit": samples.unit,
        "toolkit_median": toolkit,
        "prefect_median": prefect,
        "ratio": ratio,
        "target": target.describe(samples.unit) if target else None,
        "target_ratio": target.max_ratio if target else None,
        "passed": passed,
        "status": status,
        "samples": {TOOLKIT: samples.toolkit, PREFECT: samples.prefect},
        "extra": samples.extra,
        "errors": samples.errors,
    }
    if samples.floor is not None:
        # The free-harness floor: the same work with a harness that costs nothing.
        floor = _median(samples.floor)
        row["floor_median"] = floor
        row["floor_ratio"] = floor / prefect if floor is not None and prefect else None
        # The harness's own cost: what the toolkit's run takes beyond the floor.
        row["own_cost"] = toolkit - floor if toolkit is not None and floor is not None else None
        row["samples"][FLOOR] = samples.floor
    return row


def machine() -> dict[str, Any]:
    import prefect

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "prefect": prefect.__version__,
        "platform": platform.platform(),
    }


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit.startswith("s"):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.0f} {unit}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ("workload", "toolkit", "prefect", "ratio", "target", "result")
    lines = [header]
    for row in rows:
        ratio = row["ratio"]
        name = row["workload"]
        if row["extra"].get("retry_503"):
            counts = row["extra"]["retry_503"]
            name += f" (503s: {counts[TOOLKIT]}/{counts[PREFECT]})"
        lines.append(
            (
                name,
                _fmt(row["toolkit_median"], row["unit"]),
                _fmt(row["prefect_median"], row["unit"]),
                "-" if ratio is None else f"{ratio:.3f}",
                row["target"] or "-",
                row["status"],
            )
        )
    return _aligned(lines)


def _aligned(lines: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, the first line a header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


VARIANTS = {"seq": "sequential", "n2": "-n 2"}


def real_suites_table(rows: list[dict[str, Any]]) -> str:
    """The real suites: toolkit, Prefect's harness, the floor, ratios and the harness's cost.

    Empty when no row has a floor. The last rows are the medians across suites.
    """
    real = [row for row in rows if "suite" in row["extra"] and "floor_median" in row]
    if not real:
        return ""
    header = ("suite", "mode", "toolkit", "prefect", "floor", "ratio", "floor/prefect")
    header += ("own cost (toolkit - floor)", "tests")
    lines = [header]
    for row in real:
        tests = row["extra"]["tests"]
        counts = sorted({_tests(t) for t in tests.values()})
        lines.append(
            (
                row["extra"]["suite"],
                VARIANTS[row["extra"]["variant"]],
                _fmt(row["toolkit_median"], "s"),
                _fmt(row["prefect_median"], "s"),
                _fmt(row["floor_median"], "s"),
                _ratio(row["ratio"]),
                _ratio(row["floor_ratio"]),
                _signed(row["own_cost"]),
                " / ".join(counts) if counts else row["status"],
            )
        )
    for variant, label in VARIANTS.items():
        of = [row for row in real if row["extra"]["variant"] == variant]
        lines.append(
            (
                "median across suites",
                label,
                *(_fmt(_median_of(of, key), "s") for key in ("toolkit_median", "prefect_median")),
                _fmt(_median_of(of, "floor_median"), "s"),
                _ratio(_median_of(of, "ratio")),
                _ratio(_median_of(of, "floor_ratio")),
                _signed(_median_of(of, "own_cost")),
                "",
            )
        )
    return _aligned(lines)


def _median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    return _median([row[key] for row in rows if row[key] is not None])


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _signed(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:+.2f} s"


def _tests(counts: dict[str, int]) -> str:
    """`41 passed, 3 skipped` from JUnit counts."""
    bad = counts["failures"] + counts["errors"]
    passed = counts["tests"] - bad - counts["skipped"]
    text = f"{passed} passed"
    if counts["skipped"]:
        text += f", {counts['skipped']} skipped"
    return text + (f", {bad} failed" if bad else "")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def chart(path: Path, rows: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    """Horizontal bars of the ratios on a log axis, each target drawn as a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    plotted = [row for row in rows if row["ratio"] is not None]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(plotted) + 1.8), dpi=110)
    colors = {True: "#2e7d32", False: "#c62828", None: "#78909c"}
    for y, row in enumerate(plotted):
        ax.barh(y, row["ratio"], color=colors[row["passed"]], height=0.6)
        ax.text(row["ratio"] * 1.08, y, f"{row['ratio']:.3g}", va="center", fontsize=8)
        if row["target_ratio"] is not None:
            ax.plot([row["target_ratio"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_yticks(range(len(plotted)), [row["workload"] for row in plotted], fontsize=9)
    ax.invert_yaxis()
    ax.set_xscale("log")
    bounds = [row["ratio"] for row in plotted] + [
        row["target_ratio"] for row in plotted if row["target_ratio"] is not None
    ]
    if bounds:
        ax.set_xlim(min(bounds) / 2, max(bounds) * 2)
    ticks = [0.001, 0.003, 0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4, 10]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("toolkit / Prefect harness (lower is better; black tick = target)")
    ax.set_title(
        f"prefect-testkit vs prefect_test_harness — {facts['date'][:10]}\n"
        f"{facts['cpu_count']} CPUs ({facts['cpu_model']}), Python {facts['python']}, "
        f"Prefect {facts['prefect']}",
        fontsize=9,
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
