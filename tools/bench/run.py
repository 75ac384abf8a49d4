"""Benchmark prefect-testkit against Prefect's own prefect_test_harness.

    python tools/bench/run.py [--repeat N] [--flows N] [--quick] [--only WORKLOAD...]
                              [--suites NAME...] [--output DIR]

Both harnesses run the same workloads, interleaved, in one run; every figure is a
median and the ratio toolkit/Prefect, so a busy machine slows both alike. real_suites
runs upstream suites unchanged, also against a free harness (the floor, README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
import upstream
import workloads

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKLOADS = (
    "entry",
    "clean_db",
    "trivial_flow",
    "three_task_flow",
    "suite",
    "memory",
    "postgresql",
    "real_suites",
)
SUITE_NAMES = tuple(suite.distribution for suite in upstream.SUITES)
FULL = {"repeat": 3, "flows": 200, "trivial_flows": 50}
QUICK = {"repeat": 1, "flows": 5, "trivial_flows": 5}
QUICK_SUITES = 1  # --quick measures the first suite installed only


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=_positive, help=f"repetitions per workload (default {FULL['repeat']})"
    )
    parser.add_argument(
        "--flows",
        type=_positive,
        help=f"three-task flows per harness, spread over the repetitions (default {FULL['flows']})",
    )
    parser.add_argument(
        "--trivial-flows",
        type=_positive,
        help=f"trivial flows per harness (default {FULL['trivial_flows']})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: defaults become {QUICK} (explicit options still win)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=WORKLOADS, metavar="WORKLOAD", help=f"one of {WORKLOADS}"
    )
    parser.add_argument(
        "--suites",
        nargs="+",
        choices=SUITE_NAMES,
        metavar="NAME",
        help=f"upstream suites for real_suites, of {SUITE_NAMES} (default: those whose "
        f"release is installed here, all with nox; --quick: the first of those)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "bench-results",
        help="directory for bench-<date>.json/.png and the subprocess logs "
        "(default: bench-results/ at the repository root)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=180,
        help="seconds a harness subprocess may take, plus 10 s per flow (default 180)",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.suites is None:
        installed = [suite.distribution for suite in upstream.installed()]
        args.suites = installed[:QUICK_SUITES] if args.quick else installed
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"--output {args.output} exists and is not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = set(args.only or WORKLOADS)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.output.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{stamp}-", dir=args.output))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)

    bench = workloads.Bench(workdir=workdir, timeout=args.timeout, log=log)
    log(f"logs in {workdir}; {vars(args)}")
    samples: list[workloads.Samples] = []
    bench.warm_up()
    session_work = {"entry", "clean_db", "trivial_flow", "three_task_flow", "memory"}
    if selected & session_work:
        flows_needed = selected & {"trivial_flow", "three_task_flow", "memory"}
        got = workloads.sessions(
            bench,
            repeat=args.repeat,
            # Memory is sampled while flows run, so it needs a few even when not asked.
            trivial_flows=args.trivial_flows if flows_needed else 0,
            three_flows=args.flows if flows_needed else 0,
            entry="entry" in selected,
            clean_db="clean_db" in selected,
        )
        keep = {
            "entry": {"entry_cold", "entry_warm", "exit"},
            "clean_db": {"clean_db"},
            "trivial_flow": {"trivial_flow"},
            "three_task_flow": {"three_task_flow"},
            "memory": {"server_memory", "test_process_memory"},
        }
        wanted = set().union(*(keep[name] for name in selected & keep.keys()))
        samples += [s for s in got if s.name in wanted]
    if "suite" in selected:
        samples += workloads.suite(bench, repeat=args.repeat, cache_dir=bench.warm_cache)
    if "memory" in selected:
        samples += workloads.four_workers(bench, workers=4, cache_dir=bench.warm_cache)
    if "postgresql" in selected:
        samples += workloads.backends(bench, repeat=args.repeat, flows=max(args.flows // 10, 3))
    if "real_suites" in selected:
        suites = [suite for suite in upstream.SUITES if suite.distribution in args.suites]
        if suites:
            samples += workloads.real_suites(bench, repeat=args.repeat, suites=suites)
        else:
            missing = workloads.Samples("real_suites", "s", floor=[])
            missing.errors.append(f"none of {SUITE_NAMES} is installed here (nox installs them)")
            samples.append(missing)

    leftovers = workloads.leftover_servers(bench)
    rows = [report.summarize(s) for s in samples]
    facts = report.machine()
    data: dict[str, Any] = {
        "machine": facts,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "duration_seconds": round(time.monotonic() - started, 1),
        "results": rows,
        "leftover_processes": leftovers,
    }
    print()
    print(report.table(rows))
    print()
    real = report.real_suites_table(rows)
    if real:
        print(real)
        print()
    if leftovers:
        print(f"LEFTOVER PROCESSES from this run: {leftovers}")
    else:
        print("No server or worker process from this run is left (checked with psutil).")

    name = f"bench-{stamp}"
    report.write_json(args.output / f"{name}.json", data)
    report.chart(args.output / f"{name}.png", rows, facts)
    print(f"Results: {args.output / name}.json and .png ({data['duration_seconds']:.0f} s)")
    # The committed "latest" files only ever hold a complete, full-size run.
    if not args.quick and args.only is None:
        shutil.copyfile(args.output / f"{name}.json", HERE / "latest.json")
        shutil.copyfile(args.output / f"{name}.png", HERE / "latest.png")
        print(f"Updated {HERE / 'latest.json'} and latest.png")
    failed = [row["workload"] for row in rows if row["status"] in ("FAILED", "no data")]
    if failed:
        print(f"Workloads that could not be measured: {', '.join(failed)}")
    return 1 if failed or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
