"""One measuring process: enter a harness, run flow workloads, exit, write JSON.

Run by ``run.py`` in a fresh interpreter for every measurement, so that modules,
the server app and settings cached by an earlier harness never make a later one
look faster than a user's first one would be.

Writes ``<out>/events.jsonl`` (server pids as soon as they exist, so the parent
can stop them if we hang) and ``<out>/result.json`` (the measurements).

``--mode serve`` times nothing: it keeps a toolkit harness's server for other processes
(the real suites' free-harness floor), writes where it is to ``<out>/ready.json`` and
empties its database for every line read on stdin, until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

HARNESSES = ("toolkit", "prefect")
MODES = ("entry", "session", "hold", "serve")
STARTUP_TIMEOUT = 120


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--harness", choices=HARNESSES, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trivial", type=int, default=0, help="trivial flows to run")
    parser.add_argument("--three", type=int, default=0, help="three-task flows to run")
    parser.add_argument("--resets", type=int, default=0, help="clean databases to time")
    parser.add_argument("--fifty", type=int, default=0, help="50-concurrent-task flows to run")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql"), default="sqlite", help="toolkit only"
    )
    return parser.parse_args(argv)


class _RetryCounter(logging.Handler):
    """Counts the client's "retryable status code 503" records.

    Prefect's HTTP client logs every retry at DEBUG on ``prefect.client``; a handler
    sees each 503 the server sent without patching the client.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable status code 503" in record.getMessage():
            self.count += 1
        # The logger no longer propagates (its DEBUG records would flood the
        # console); pass on what the console would have shown anyway.
        if record.levelno >= logging.WARNING:
            logging.getLogger("prefect").handle(record)


def _install_retry_counter() -> _RetryCounter:
    counter = _RetryCounter()
    client_logger = logging.getLogger("prefect.client")
    client_logger.setLevel(logging.DEBUG)
    client_logger.propagate = False
    client_logger.addHandler(counter)
    return counter


class _RssSampler:
    """Peak RSS of a process tree, sampled in a thread (RSS has no kernel peak for trees)."""

    def __init__(self, roots: Callable[[], list[Any]], interval: float = 0.1) -> None:
        self._roots = roots
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        import psutil

        total = 0
        for root in self._roots():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                with suppress(psutil.Error):
                    total += proc.memory_info().rss
        self.peak = max(self.peak, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> _RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _harness(name: str) -> Callable[..., AbstractContextManager[Any]]:
    if name == "toolkit":
        from prefect_testkit import prefect_test_harness as toolkit_harness

        return toolkit_harness
    from prefect.testing.utilities import prefect_test_harness

    return prefect_test_harness


def _server_roots(name: str, handle: Any) -> Callable[[], list[Any]]:
    import psutil

    if name == "toolkit":
        server = psutil.Process(handle.server_pid)
        return lambda: [server]
    # Prefect's server is a plain child of this process; nothing else is.
    me = psutil.Process()
    return lambda: me.children(recursive=False)


def _server_pids(name: str, handle: Any) -> list[int]:
    import psutil

    if name == "toolkit":
        return [handle.server_pid]
    return [child.pid for child in psutil.Process().children(recursive=True)]


@contextmanager
def _timed(into: dict[str, Any], key: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[key] = time.perf_counter() - started


def _flows() -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]:
    from prefect import flow, task

    @flow
    def trivial() -> int:
        return 1

    @task
    def load(n: int) -> list[int]:
        return list(range(n))

    @task
    def square(values: list[int]) -> list[int]:
        return [v * v for v in values]

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    def three_tasks() -> int:
        return total(square(load(10)))

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def fifty_concurrent() -> int:
        return sum(future.result() for future in [double.submit(i) for i in range(50)])

    return trivial, three_tasks, fifty_concurrent


def _run_flows(flow_fn: Callable[[], Any], count: int, expected: int) -> list[float]:
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        value = flow_fn()
        durations.append(time.perf_counter() - started)
        if value != expected:
            raise AssertionError(f"{flow_fn!r} returned {value!r}, expected {expected!r}")
    return durations


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    events = (args.out / "events.jsonl").open("a", buffering=1)
    result: dict[str, Any] = {"harness": args.harness, "mode": args.mode}

    # Not timed: both harnesses pay the same import, and it is not what they compete on.
    with _timed(result, "import_seconds"):
        import prefect  # noqa: F401

        harness_factory = _harness(args.harness)
        trivial, three_tasks, fifty_concurrent = _flows()
    counter = _install_retry_counter()

    # Both harnesses default to 30 s, which a shared, busy machine can exceed; a
    # timeout here would lose a sample without making either harness look faster.
    options: dict[str, Any] = {"server_startup_timeout": STARTUP_TIMEOUT}
    if args.database != "sqlite":
        if args.harness != "toolkit":
            raise SystemExit(f"Prefect's harness has no --database {args.database}")
        options["database"] = args.database
    result["database"] = args.database
    if args.mode == "serve" and args.harness != "toolkit":
        raise SystemExit("--mode serve needs the toolkit's harness (reset_database)")
    harness = harness_factory(**options)
    with _timed(result, "enter_seconds"):
        handle = harness.__enter__()
    try:
        pids = _server_pids(args.harness, handle)
        events.write(json.dumps({"server_pids": pids}) + "\n")
        if args.mode == "serve":
            _serve(handle, args.out)
            return 0
        sampler = _RssSampler(_server_roots(args.harness, handle))
        with sampler:
            if args.mode == "hold":
                result["trivial_seconds"] = _run_flows(trivial, max(args.trivial, 1), 1)
            else:
                result["trivial_seconds"] = _run_flows(trivial, args.trivial, 1)
                result["three_task_seconds"] = _run_flows(three_tasks, args.three, 285)
                before = counter.count
                result["fifty_task_seconds"] = _run_flows(fifty_concurrent, args.fifty, 2450)
                result["three_retry_503"] = before  # trivial and three-task flows
                result["fifty_retry_503"] = counter.count - before
        result["server_peak_rss"] = sampler.peak
        result["retry_503"] = counter.count
        if args.mode == "hold":
            _write(args.out / "ready.json", result)
            # Held open until the parent closes our stdin, so that several servers
            # are alive at the same time while it measures them.
            sys.stdin.read()
        if args.harness == "toolkit" and args.resets:
            reset = getattr(handle, "reset_database", None)
            if reset is None:
                result["clean_db_error"] = "HarnessHandle has no reset_database() yet"
            else:
                result["clean_db_seconds"] = []
                for _ in range(args.resets):
                    started = time.perf_counter()
                    reset()
                    result["clean_db_seconds"].append(time.perf_counter() - started)
                    # A reset must leave a usable server: a flow has to run after it.
                    _run_flows(trivial, 1, 1)
    finally:
        with _timed(result, "exit_seconds"):
            harness.__exit__(*sys.exc_info())

    if args.harness == "prefect" and args.resets:
        # Prefect's only clean database is a new harness: what a function-scoped
        # fixture would do for every test.
        result["clean_db_seconds"] = []
        for _ in range(args.resets):
            started = time.perf_counter()
            with harness_factory(server_startup_timeout=STARTUP_TIMEOUT):
                pass
            result["clean_db_seconds"].append(time.perf_counter() - started)

    result["test_process_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if result.get("trivial_seconds"):
        result["trivial_median"] = statistics.median(result["trivial_seconds"])
    _write(args.out / "result.json", result)
    return 0


def _serve(handle: Any, out: Path) -> None:
    """Serve other processes: say where the server is; a clean database per stdin line."""
    ready = {"api_url": handle.api_url, "api_auth_string": handle.api_auth_string}
    _write(out / "ready.json", ready, private=True)
    for resets, _ in enumerate(sys.stdin, start=1):
        handle.reset_database()
        _write(out / "reset.json", {"resets": resets})


def _write(path: Path, data: dict[str, Any], *, private: bool = False) -> None:
    tmp = path.with_suffix(".tmp")
    # Private: the server's API auth string is only for the processes the bench starts.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(data))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
