"""Stress the toolkit: many concurrent pytest sessions (-n 2), some SIGKILLed mid-run.

    python tools/storm/run.py --duration SECONDS --concurrency N --kill-probability P
                              --seed S [--sessions-max M] [--session-timeout S]
                              [--grace S] [--output DIR] [--keep-lock-dir]

Keeps N sessions of the flow suite in tools/storm/suite running until the duration has
elapsed (or M sessions have started), SIGKILLs the process group of a random fraction P
of them at a random moment, then checks that every other session passed every test, that
no two live harnesses shared a port or a database, that nothing outlived its session, and
that no lease is left. Exit status 0 only if every check passed; README.md explains the
report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import checks
from sessions import Session, Storm, StormConfig

# After the last start: the last sessions' own timeout, then the grace, then the checks.
DEADLINE_MARGIN = 120.0


def _number(kind: type[int] | type[float], low: float, *, low_open: bool = False) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not math.isfinite(value) or value < low or (low_open and value == low):
            bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def _probability(text: str) -> float:
    value = _number(float, 0.0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return float(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration",
        type=_number(float, 0, low_open=True),
        required=True,
        help="seconds during which new sessions are started",
    )
    parser.add_argument(
        "--concurrency", type=_number(int, 1), required=True, help="sessions running at once"
    )
    parser.add_argument(
        "--kill-probability",
        type=_probability,
        required=True,
        help="chance that a session is SIGKILLed at a random moment (0-1)",
    )
    parser.add_argument(
        "--seed", type=_number(int, 0), required=True, help="seed of the kill choices"
    )
    parser.add_argument(
        "--sessions-max", type=_number(int, 1), help="stop starting sessions after this many"
    )
    parser.add_argument(
        "--session-timeout",
        type=_number(float, 0, low_open=True),
        default=400.0,
        help="seconds after which a session is killed and counted as failed (default 400)",
    )
    parser.add_argument(
        "--kill-window",
        type=_number(float, 0, low_open=True),
        default=30.0,
        help="until a session has passed, kills fall within this many seconds of a start; "
        "then within the median passing session's duration (default 30)",
    )
    parser.add_argument(
        "--grace",
        type=_number(float, 0),
        default=10.0,
        help="seconds after a session ends by which its servers and directories must be gone "
        "(default 10)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="directory for report.json, the records and every session's log and junit XML "
        "(default: a new prefect-testkit-storm-* directory in the temporary directory)",
    )
    parser.add_argument(
        "--keep-lock-dir",
        action="store_true",
        help="keep the storm's private lock directory (removed after a clean run by default)",
    )
    args = parser.parse_args(argv)
    if args.output is not None and args.output.exists() and any(args.output.iterdir()):
        parser.error(f"--output {args.output} is not empty; give a new or empty directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = StormConfig(
        duration=args.duration,
        concurrency=args.concurrency,
        kill_probability=args.kill_probability,
        seed=args.seed,
        sessions_max=args.sessions_max,
        session_timeout=args.session_timeout,
        grace=args.grace,
        kill_window=args.kill_window,
    )
    run_id = str(uuid.uuid4())
    output = args.output or Path(tempfile.mkdtemp(prefix=f"prefect-testkit-storm-{run_id[:8]}-"))
    output.mkdir(parents=True, exist_ok=True)
    record_dir = output / "records"
    record_dir.mkdir()
    # Private, so that other runs' leases on this machine are neither seen nor disturbed.
    lock_dir = Path(tempfile.mkdtemp(prefix=f"prefect-testkit-storm-locks-{run_id[:8]}-"))
    lock_dir.chmod(0o700)
    started = time.time()
    hard_deadline = time.monotonic() + config.duration + config.session_timeout + DEADLINE_MARGIN

    def say(message: str) -> None:
        print(f"[storm {time.time() - started:7.1f}s] {message}", flush=True)

    say(f"run {run_id}: output {output}, lock directory {lock_dir}")
    say(
        f"hard deadline in {hard_deadline - time.monotonic():.0f} s; "
        f"STORM_RUN_ID={run_id} marks every session's processes"
    )
    storm = Storm(
        config,
        run_id=run_id,
        lock_dir=lock_dir,
        record_dir=record_dir,
        sessions_dir=output / "sessions",
        say=say,
    )
    settled: dict[str, list[str]] = {}

    def on_settled(session: Session) -> None:
        harnesses, _ = checks.load_records(record_dir)
        mine = [h for h in harnesses if h.session == session.name]
        settled[session.name] = checks.settled_leftovers(session, mine, config.grace, run_id)
        for problem in settled[session.name]:
            say(f"LEFTOVER {problem}")

    storm.run(hard_deadline, on_settled)
    say("all sessions finished; checking")
    report = build_report(storm, run_id, lock_dir, record_dir, settled, args)
    report["seconds"] = round(time.time() - started, 1)
    report["output"] = str(output)
    (output / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report, output / "report.json")
    if not args.keep_lock_dir:
        _stop_factories(report["factories"])
        if report["ok"]:
            shutil.rmtree(lock_dir, ignore_errors=True)
        else:
            print(f"  lock directory kept for inspection: {lock_dir}")
    return 0 if report["ok"] else 1


def build_report(
    storm: Storm,
    run_id: str,
    lock_dir: Path,
    record_dir: Path,
    settled: dict[str, list[str]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    sessions = {s.name: s for s in storm.sessions}
    expected = checks.expected_tests()
    harnesses, failed_starts = checks.load_records(record_dir)
    failures: dict[str, list[str]] = {}

    survivors = [s for s in storm.sessions if not s.killed]
    results = {s.name: checks.session_result(s, expected) for s in survivors}
    failures["sessions"] = [p for result in results.values() for p in result.problems]
    failures["collisions"] = checks.collisions(harnesses, sessions)
    failures["settled leftovers"] = [p for problems in settled.values() for p in problems]

    processes, factories = checks.storm_processes(run_id)
    failures["processes"] = processes
    leases_before, error = checks.live_leases(lock_dir)
    failures["leases before clean"] = [json.dumps(lease) for lease in leases_before]
    failures["cli"] = [error] if error else []

    clean = checks.testkit_cli("clean", lock_dir=lock_dir)
    if clean.returncode != 0:
        failures["cli"].append(f"prefect-testkit clean exited {clean.returncode}: {clean.stderr}")
    killed_dirs = sorted(
        {h.directory for h in harnesses if sessions[h.session].killed_at is not None}
    )
    failures["directories after clean"] = [
        *(
            f"{d} (killed session's) survived prefect-testkit clean"
            for d in killed_dirs
            if Path(d).exists()
        ),
        *(f"{d} left in the lock directory" for d in checks.remaining_directories(lock_dir)),
    ]
    leases_after, error = checks.live_leases(lock_dir)
    failures["leases at end"] = [json.dumps(lease) for lease in leases_after]
    if error:
        failures["cli"].append(error)
    if storm.deadline_hit:
        failures["deadline"] = ["the storm's hard deadline was reached"]

    passed = [s for s in survivors if not results[s.name].problems]
    return {
        "ok": not any(failures.values()),
        "run_id": run_id,
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "lock_dir": str(lock_dir),
        "sessions": {
            "started": len(storm.sessions),
            "passed": len(passed),
            "killed": sum(s.killed for s in storm.sessions),
            "failed": len(survivors) - len(passed),
            "timed_out": sum(s.timed_out for s in storm.sessions),
            # Drawn for a kill, but the session ended first: it counts as a survivor.
            "kill_missed": sum(
                s.kill_at is not None and s.killed_at is None for s in storm.sessions
            ),
        },
        "tests": {
            "per_session": len(expected),
            "passed_in_surviving_sessions": sum(len(r.passed) for r in results.values()),
            "lost_in_surviving_sessions": sum(len(r.lost) for r in results.values()),
        },
        "harnesses": {
            "recorded": len(harnesses),
            "released": sum(h.released_by is not None for h in harnesses),
            "ports": len({h.port for h in harnesses}),
            "databases": len({h.database for h in harnesses}),
            "failed_starts": len(failed_starts),
        },
        "clean_removed": [
            line.removeprefix("removed ")
            for line in clean.stdout.splitlines()
            if line.startswith("removed ")
        ],
        "killed_session_directories": len(killed_dirs),
        "leases_at_end": leases_after,
        "factories": [p.pid for p in factories],
        "failures": failures,
        "session_details": [
            {
                "name": s.name,
                "outcome": s.outcome,
                "seconds": round((s.finished_at or s.started_at) - s.started_at, 1),
                "returncode": s.returncode,
                "log": str(s.log_path),
            }
            for s in storm.sessions
        ],
    }


def print_report(report: dict[str, Any], path: Path) -> None:
    sessions, tests, harnesses = report["sessions"], report["tests"], report["harnesses"]
    print()
    print(
        f"storm {report['run_id']}: {'PASSED' if report['ok'] else 'FAILED'}"
        f" in {report['seconds']} s"
    )
    print(
        f"  sessions: {sessions['started']} started, {sessions['passed']} passed, "
        f"{sessions['killed']} killed, {sessions['failed']} failed "
        f"({sessions['timed_out']} timed out)"
    )
    print(
        f"  tests: {tests['passed_in_surviving_sessions']} passed in surviving sessions "
        f"({tests['per_session']} each), {tests['lost_in_surviving_sessions']} lost"
    )
    print(
        f"  harnesses: {harnesses['recorded']} recorded ({harnesses['released']} released, "
        f"the rest killed), {harnesses['ports']} distinct ports, "
        f"{harnesses['databases']} distinct databases"
    )
    print(
        f"  prefect-testkit clean removed {len(report['clean_removed'])} path(s); "
        f"leases at end: {len(report['leases_at_end'])}; "
        f"server factory: {report['factories'] or 'none'} (allowed to outlive the sessions)"
    )
    for check, problems in report["failures"].items():
        print(f"  {check}: {'ok' if not problems else f'{len(problems)} FAILURE(S)'}")
        for problem in problems[:20]:
            print(f"    - {problem}")
    print(f"  report: {path}")


def _stop_factories(pids: list[int]) -> None:
    """Stop the server factory the storm's sessions started: its lock directory goes away."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
