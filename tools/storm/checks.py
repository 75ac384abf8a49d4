"""What the storm verifies: results, exclusive ports and databases, leftovers, leases."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sessions import RUN_ID_ENV, SESSION_ID_ENV, SUITE, Session

FACTORY_MODULE = "prefect_testkit._launch.factory"


@dataclass(frozen=True)
class Harness:
    """One worker's harness, as the suite's conftest recorded it."""

    session: str
    worker: str
    pid: int
    port: int
    database: str
    directory: str
    server_pid: int
    server_create_time: float | None
    allocator_pid: int | None
    lease_after: float
    released_by: float | None


def load_records(record_dir: Path) -> tuple[list[Harness], list[dict[str, Any]]]:
    """The harnesses recorded in ``record_dir`` and the failed starts."""
    harnesses: list[Harness] = []
    failed_starts: list[dict[str, Any]] = []
    for path in sorted(record_dir.glob("*.jsonl")):
        started: dict[str, Any] | None = None
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the line a SIGKILL cut short
            if event["event"] == "harness":
                started = event
            elif event["event"] == "start_failed":
                failed_starts.append(event)
            elif event["event"] == "released" and started is not None:
                harnesses.append(_harness(started, event["released_by"]))
                started = None
        if started is not None:
            harnesses.append(_harness(started, None))
    return harnesses, failed_starts


def _harness(event: dict[str, Any], released_by: float | None) -> Harness:
    return Harness(
        session=event["session"],
        worker=event["worker"],
        pid=event["pid"],
        port=event["port"],
        database=event["database"],
        directory=event["directory"],
        server_pid=event["server_pid"],
        server_create_time=event.get("server_create_time"),
        allocator_pid=event.get("allocator_pid"),
        lease_after=event["lease_after"],
        released_by=released_by,
    )


def expected_tests(suite: Path = SUITE) -> set[str]:
    """``module::test`` for every test function of the suite, read without importing it."""
    names = set()
    for path in sorted(suite.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                names.add(f"{path.stem}::{node.name}")
    return names


@dataclass(frozen=True)
class SessionResult:
    passed: set[str]
    lost: set[str]
    problems: list[str]


def session_result(session: Session, expected: set[str]) -> SessionResult:
    """What a session that was not killed on purpose achieved; no problems when it passed."""
    if session.timed_out:
        return SessionResult(set(), set(), [f"{session.name}: timed out ({session.log_path})"])
    problems = []
    if session.returncode != 0:
        problems.append(f"{session.name}: pytest exited {session.returncode}")
    passed, other = _junit_outcomes(session.junit_path)
    problems.extend(f"{session.name}: {case} {outcome}" for case, outcome in sorted(other.items()))
    lost = expected - passed - set(other)
    if lost:
        problems.append(f"{session.name}: no result for {', '.join(sorted(lost))}")
    if problems:
        problems.append(f"{session.name}: see {session.log_path}")
    return SessionResult(passed & expected, lost, problems)


def _junit_outcomes(path: Path) -> tuple[set[str], dict[str, str]]:
    passed: set[str] = set()
    other: dict[str, str] = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return passed, {"<junit xml>": f"unreadable: {exc}"}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcomes = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        if outcomes:
            other[name] = "/".join(outcomes)
        else:
            passed.add(name)
    return passed, other


def harness_end(harness: Harness, session: Session) -> float:
    """When the harness stopped holding its port and database, at the latest.

    A killed worker never writes its release: its leases ended with its process group.
    """
    if harness.released_by is not None:
        return harness.released_by
    finished = session.finished_at
    assert finished is not None, "checks run after every session has finished"
    return finished


def collisions(harnesses: list[Harness], sessions: dict[str, Session]) -> list[str]:
    """Pairs of harnesses that held the same port or database at overlapping times."""
    found = []
    for what in ("port", "database"):
        groups: dict[object, list[Harness]] = defaultdict(list)
        for harness in harnesses:
            groups[getattr(harness, what)].append(harness)
        for value, group in groups.items():
            group.sort(key=lambda h: h.lease_after)
            for i, first in enumerate(group):
                first_end = harness_end(first, sessions[first.session])
                for second in group[i + 1 :]:
                    if second.lease_after >= first_end:
                        continue
                    found.append(
                        f"{what} {value}: {first.session}/{first.worker} (pid {first.pid}, "
                        f"{first.lease_after:.3f}-{first_end:.3f}) and {second.session}/"
                        f"{second.worker} (pid {second.pid}, from {second.lease_after:.3f})"
                    )
    found.extend(
        f"port {h.port}: the allocator's record names pid {h.allocator_pid}, "
        f"but {h.session}/{h.worker} (pid {h.pid}) holds it"
        for h in harnesses
        if h.allocator_pid is not None and h.allocator_pid != h.pid
    )
    return found


def _alive(pid: int, create_time: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > 1.0:
            return False  # the pid was reused
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def settled_leftovers(
    session: Session, harnesses: list[Harness], grace: float, run_id: str
) -> list[str]:
    """What of ``session`` still exists ``grace`` seconds after it finished."""
    found = [
        f"{session.name}: pid {process.pid} still runs {grace:g} s after its session "
        f"{session.outcome}: {' '.join(process.cmdline())[:160]}"
        for process in _marked_processes(run_id, session.name)
    ]
    for harness in harnesses:
        if _alive(harness.server_pid, harness.server_create_time):
            found.append(
                f"{session.name}/{harness.worker}: server pid {harness.server_pid} (port "
                f"{harness.port}) still runs {grace:g} s after its session {session.outcome}"
            )
        # A SIGKILLed worker cannot remove its directory: `prefect-testkit clean` must.
        if session.killed_at is None and Path(harness.directory).exists():
            found.append(
                f"{session.name}/{harness.worker}: directory {harness.directory} still exists "
                f"{grace:g} s after the session exited"
            )
    found.extend(
        f"{session.name}: process {pid} of its group outlived the SIGKILL"
        for pid in session.stragglers
    )
    return found


def _marked_processes(run_id: str, session_name: str) -> list[psutil.Process]:
    """Live processes started for ``session_name``, by their inherited environment.

    Servers forked by the factory are left out: they show the environment of whichever
    session started the factory, so they are checked by their recorded pids instead.
    """
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if (
                env.get(RUN_ID_ENV) == run_id
                and env.get(SESSION_ID_ENV) == session_name
                and process.status() != psutil.STATUS_ZOMBIE
                and not _is_factory(process)
            ):
                found.append(process)
    return found


def _is_factory(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return FACTORY_MODULE in " ".join(process.cmdline())
    return False


def storm_processes(run_id: str) -> tuple[list[str], list[psutil.Process]]:
    """Processes left by the storm's sessions, and the server factories among them.

    Every session's environment carries the run marker and children inherit it. A server
    forked by the factory shows the factory's environment, which carries the marker too
    when one of the sessions started it (the lock directory is the storm's own). The
    factory is the one process allowed to stay: it idles out and holds no lease.
    """
    leftovers: list[str] = []
    factories: list[psutil.Process] = []
    marker = f"{RUN_ID_ENV}={run_id}"
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or process.environ().get(RUN_ID_ENV) != run_id:
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            parent = process.parent()
            if _is_factory(process) and (parent is None or not _is_factory(parent)):
                factories.append(process)
                continue
            leftovers.append(f"pid {process.pid} ({marker}): {' '.join(process.cmdline())[:160]}")
        except psutil.Error:
            continue
    return leftovers, factories


def testkit_cli(*args: str, lock_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``prefect-testkit`` console script against the storm's lock directory."""
    script = Path(sys.executable).parent / "prefect-testkit"
    command = [str(script)] if script.exists() else ["prefect-testkit"]
    env = {**os.environ, "PREFECT_TESTKIT_LOCK_DIR": str(lock_dir)}
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def live_leases(lock_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """``prefect-testkit leases --json``, and an error if the command itself failed."""
    result = testkit_cli("leases", "--json", lock_dir=lock_dir)
    if result.returncode != 0:
        return [], f"prefect-testkit leases exited {result.returncode}: {result.stderr.strip()}"
    try:
        leases = json.loads(result.stdout)
    except ValueError:
        return [], f"prefect-testkit leases --json printed no JSON: {result.stdout[:200]!r}"
    return leases, None


def remaining_directories(lock_dir: Path) -> list[str]:
    """Harness directories still in the storm's lock directory."""
    dirs = lock_dir / "dirs"
    if not dirs.is_dir():
        return []
    return sorted(str(path) for path in dirs.iterdir() if path.is_dir())
