"""Prefect's documented testing patterns, with only the harness import swapped.

Run as real pytest sessions in subprocesses: plain, with `-n 2`, and two `-n 2`
sessions at once, which must never share a server port or a database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_testkit.testing import postgres_unavailable

SEED_SUITE = Path(__file__).parent / "seed_suite"


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            postgres_unavailable() is not None,
            reason=f"PostgreSQL tests skipped: {postgres_unavailable()}",
        ),
    ),
]


def start_suite(
    tmp_path: Path, name: str, *args: str, backend: str = "sqlite"
) -> tuple[subprocess.Popen[str], Path]:
    suite = tmp_path / name
    shutil.copytree(SEED_SUITE, suite)
    record = tmp_path / f"{name}.jsonl"
    process = subprocess.Popen(
        # -p no:prefect_testkit: this is the hand-written-conftest style, without the plugin.
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:prefect_testkit",
            "-p",
            "no:cacheprovider",
            "-rA",
            *args,
            str(suite),
        ],
        cwd=suite,
        env={**os.environ, "SEED_SUITE_RECORD": str(record), "PREFECT_TESTKIT_DATABASE": backend},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, record


def finish(process: subprocess.Popen[str], record: Path) -> list[dict[str, object]]:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "8 passed" in output, output
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_seed_suite_passes_unchanged(tmp_path: Path, backend: str) -> None:
    harnesses = finish(*start_suite(tmp_path, "plain", backend=backend))
    assert len(harnesses) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_xdist_sessions_never_share_a_port_or_a_database(
    tmp_path: Path, backend: str
) -> None:
    runs = 2
    started = [start_suite(tmp_path, f"run{i}", "-n", "2", backend=backend) for i in range(runs)]
    harnesses = [harness for run in started for harness in finish(*run)]

    print("\n".join(map(str, harnesses)))
    assert len(harnesses) == 2 * runs, "one harness per worker"
    assert len({h["port"] for h in harnesses}) == 2 * runs
    assert len({h["database"] for h in harnesses}) == 2 * runs
    if backend == "postgresql":
        # Every worker of both runs on one PostgreSQL server, each in its own database.
        assert len({h["database_server"] for h in harnesses}) == 1
