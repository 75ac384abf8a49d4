"""Many real processes hammer the allocator; not one port or directory may be granted twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import HELPERS, free_ports, run_cli

from prefect_testkit_xdist import clean, list_leases

PROCESSES = 16
ITERATIONS = 200
# Fewer ports than processes, so that most attempts meet a held lock or a bound port and the
# exhausted-pool wait path runs too.
POOL_SIZE = 12


def test_no_double_grants_under_contention(tmp_path: Path) -> None:
    ports = free_ports(POOL_SIZE)
    pool = f"{ports[0]}-{ports[-1]}"
    markers = tmp_path / "markers"
    markers.mkdir()
    results = [tmp_path / f"result-{number}.json" for number in range(PROCESSES)]
    # Meanwhile, `clean` and `leases` run over and over: clean deletes the lock files of free
    # directories while workers race to take them, which must never let two workers in at once.
    stop = threading.Event()
    janitor_rounds = []

    def janitor() -> None:
        while not stop.wait(0.05):
            clean()
            list_leases()
            janitor_rounds.append(1)

    janitor_thread = threading.Thread(target=janitor)
    started = time.monotonic()
    janitor_thread.start()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HELPERS / "stress_worker.py"),
                str(number),
                str(ITERATIONS),
                str(markers),
                pool,
                str(result),
            ],
            env=os.environ.copy(),
        )
        for number, result in enumerate(results)
    ]
    try:
        exit_codes = [worker.wait(timeout=240) for worker in workers]
    finally:
        stop.set()
        janitor_thread.join()
        for worker in workers:
            worker.kill()
            worker.wait()
    elapsed = time.monotonic() - started
    assert exit_codes == [0] * PROCESSES
    reports = [json.loads(result.read_text()) for result in results]
    problems = [problem for report in reports for problem in report["problems"]]
    assert problems == []
    assert sum(report["iterations"] for report in reports) == PROCESSES * ITERATIONS
    ports_used = {port for report in reports for port in report["ports"]}
    assert len(ports_used) > 1
    assert list(markers.iterdir()) == []
    assert len(janitor_rounds) > 10
    assert list_leases() == []
    assert "nothing to remove" in run_cli("clean").stdout
    print(
        f"{PROCESSES} processes x {ITERATIONS} port+directory leases: {elapsed:.1f}s, "
        f"{len(janitor_rounds)} concurrent clean+leases rounds"
    )
