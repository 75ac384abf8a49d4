"""Run pytest once, with a time limit, and write what it did as JSON.

    python run_pytest.py --name NAME --result FILE [--timeout SECONDS] -- PYTEST_ARGS...

Runs in a compat cell's virtualenv (its Python, its pytest), in the current directory. The
result: counts from pytest's JUnit XML (passed, failed, errors, skipped), pytest's exit
code and the wall time of the whole run (interpreter start, imports, harness start, tests);
when pytest gives no verdict (a usage or collection error, a timeout), its last lines.
Always exits 0 once the result is written: the cell goes on to its next run and fails at
the end if any run failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

TAIL_LINES = 30  # of pytest's output, kept in the result when pytest gave no verdict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="what this run is, for the result")
    parser.add_argument("--result", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds (default 1800)")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest's arguments")
    return parser.parse_args(argv)


def junit_counts(path: Path) -> dict[str, int]:
    """Tests, failures, errors and skips summed over the XML's test suites."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def failed_tests(path: Path, limit: int = 20) -> list[str]:
    """`nodeid: first line of the message` for the first failed or erroring tests."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = (problem.get("message") or "").strip().splitlines()
            test = f"{case.get('classname')}::{case.get('name')}"
            found.append(f"{test}: {message[0][:300] if message else problem.tag}")
    return found[:limit]


def echo(process: subprocess.Popen[str], tail: collections.deque[str]) -> None:
    """Copy pytest's output to ours as it comes, keeping its last lines."""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line.rstrip("\n"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="compat-junit-") as scratch:
        junit = Path(scratch) / "junit.xml"
        command = [sys.executable, "-m", "pytest", f"--junitxml={junit}", *args.pytest_args]
        print(f"[compat] {args.name}: {' '.join(command)} (in {os.getcwd()})", flush=True)
        started = time.monotonic()
        # Its own process group, so that a timeout also ends the servers it started.
        process = subprocess.Popen(
            command,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        reader = threading.Thread(target=echo, args=(process, tail), daemon=True)
        reader.start()
        timed_out = False
        try:
            code = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        reader.join(timeout=10)
        result: dict[str, Any] = {
            "name": args.name,
            "exit_code": code,
            "timed_out": timed_out,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        if code not in (0, 1) or not junit.is_file():  # no tests' verdict: say why
            result["output_tail"] = list(tail)
        if junit.is_file():
            counts = junit_counts(junit)
            bad = counts["failures"] + counts["errors"]
            result |= {
                "passed": counts["tests"] - bad - counts["skipped"],
                "failed": counts["failures"],
                "errors": counts["errors"],
                "skipped": counts["skipped"],
                "failures": failed_tests(junit),
            }
        return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    counts = {key: result.get(key) for key in ("passed", "failed", "errors", "skipped")}
    print(
        f"[compat] {args.name}: exit {result['exit_code']}"
        f"{' (timed out)' if result['timed_out'] else ''}, {counts}, {result['wall_seconds']} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
