"""The workloads: each starts measuring subprocesses and returns samples per harness.

Every measurement runs in its own process with a timeout; a failure is recorded on
the workloads it feeds and the bench goes on. All subprocesses carry a marker in
their environment, which servers inherit, so that leftovers can be found at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import floor
import psutil
import upstream

from prefect_testkit.config import CACHE_DIR_ENV as CACHE_ENV
from prefect_testkit.config import FACTORY_IDLE_ENV

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
SUITE = HERE / "suite"
MARKER_ENV = "PREFECT_TESTKIT_BENCH_RUN"
LOCK_DIR_ENV = "PREFECT_TESTKIT_LOCK_DIR"  # the allocator's (prefect-testkit-xdist)
HARNESS_ENV = "PREFECT_TESTKIT_BENCH_HARNESS"
TOOLKIT, PREFECT = "toolkit", "prefect"
FLOOR = "floor"  # the real suites' free harness: a no-op on a server already running
MB = 1024 * 1024


class WorkloadError(RuntimeError):
    """A measuring subprocess failed; the message says how and where its log is."""


@dataclass
class Samples:
    """Measurements of one workload, per harness."""

    name: str
    unit: str
    toolkit: list[float] = field(default_factory=list)
    prefect: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    floor: list[float] | None = None  # a list for workloads measured against the floor too

    def add(self, harness: str, values: Iterable[float]) -> None:
        sides = {TOOLKIT: self.toolkit, PREFECT: self.prefect, FLOOR: self.floor}
        target = sides[harness]
        if target is None:
            raise ValueError(f"{self.name} has no {harness} side")
        target.extend(values)


@dataclass
class Bench:
    """Where one run keeps its logs and caches, and how long a subprocess may take."""

    workdir: Path
    timeout: float
    log: Callable[[str], None]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    server_pids: set[int] = field(default_factory=set)
    _counter: int = 0

    def env(self, harness: str, cache_dir: Path | None) -> dict[str, str]:
        env = {**os.environ, MARKER_ENV: self.run_id, HARNESS_ENV: harness}
        if cache_dir is not None:
            env[CACHE_ENV] = str(cache_dir)
            if cache_dir != self.warm_cache:
                # Cold: no template database and no running server factory either; the
                # factory started here exits as soon as its one server has.
                env[LOCK_DIR_ENV] = str(cache_dir / "locks")
                env[FACTORY_IDLE_ENV] = "0"
        return env

    def new_dir(self, label: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{self._counter:03d}-{label}"
        path.mkdir(parents=True)
        return path

    @property
    def warm_cache(self) -> Path:
        return self.workdir / "warm-cache"

    def warm_up(self) -> None:
        """Fill the toolkit's cache and the OS page cache before anything is timed."""
        self.warm_cache.mkdir(exist_ok=True)
        self.log("warm-up: one toolkit harness with the shared cache (not timed)")
        try:
            run_worker(self, TOOLKIT, "entry", cache_dir=self.warm_cache)
        except WorkloadError as exc:
            # Not fatal: the timed runs will fail or succeed on their own.
            self.log(f"  warm-up FAILED: {exc}")

    def fresh_cache(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="cold-cache-", dir=self.workdir))


# --- subprocess plumbing ---------------------------------------------------------------


def _start(bench: Bench, argv: list[str], out: Path, env: dict[str, str], **kw: Any) -> Any:
    log = (out / "output.log").open("wb")
    try:
        # Own process group: on a timeout we kill the worker and any child it made.
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw
        )
    finally:
        log.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _server_pids(out: Path) -> list[int]:
    events = out / "events.jsonl"
    if not events.exists():
        return []
    return [
        pid for line in events.read_text().splitlines() for pid in json.loads(line)["server_pids"]
    ]


def _reap_servers(bench: Bench, out: Path) -> list[int]:
    """Stop the worker's servers if they outlived it; return those that did."""
    pids = _server_pids(out)
    bench.server_pids.update(pids)
    survivors = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.wait(timeout=5)
        except psutil.NoSuchProcess:
            continue
        except psutil.TimeoutExpired:
            if MARKER_ENV in _environ(proc) and _environ(proc)[MARKER_ENV] == bench.run_id:
                survivors.append(pid)
                proc.kill()
    return survivors


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:
        return {}


def _failure(out: Path, reason: str) -> WorkloadError:
    tail = "\n".join((out / "output.log").read_text(errors="replace").splitlines()[-8:])
    return WorkloadError(f"{reason} (log: {out / 'output.log'})\n{tail}")


def run_worker(
    bench: Bench,
    harness: str,
    mode: str,
    *,
    cache_dir: Path | None,
    trivial: int = 0,
    three: int = 0,
    resets: int = 0,
    fifty: int = 0,
    database: str = "sqlite",
) -> dict[str, Any]:
    out = bench.new_dir(f"{harness}-{mode}-{database}")
    argv = [sys.executable, str(WORKER), "--harness", harness, "--mode", mode, "--out", str(out)]
    argv += ["--trivial", str(trivial), "--three", str(three), "--resets", str(resets)]
    argv += ["--fifty", str(fifty), "--database", database]
    proc = _start(bench, argv, out, bench.env(harness, cache_dir), stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=bench.timeout + 10 * (trivial + three + fifty) + 60 * resets)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _reap_servers(bench, out)
        raise _failure(out, f"{harness} {mode} worker timed out") from None
    leftovers = _reap_servers(bench, out)
    if proc.returncode != 0:
        raise _failure(out, f"{harness} {mode} worker exited with {proc.returncode}")
    if leftovers:
        raise _failure(out, f"{harness} server(s) {leftovers} outlived the harness exit")
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result


# --- workloads -------------------------------------------------------------------------


def _split(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def sessions(
    bench: Bench,
    *,
    repeat: int,
    trivial_flows: int,
    three_flows: int,
    entry: bool,
    clean_db: bool,
) -> list[Samples]:
    """Entry (cold, warm), exit, clean database, flows and memory, from the same sessions.

    Per repetition: a toolkit entry with an empty cache, a Prefect session and a
    toolkit session with a warm cache, their order flipped on odd repetitions so
    that neither harness always runs right after the other.
    """
    cold = Samples("entry_cold", "s")
    warm = Samples("entry_warm", "s")
    exit_ = Samples("exit", "s")
    clean = Samples("clean_db", "s")
    trivial = Samples("trivial_flow", "s/flow")
    three = Samples("three_task_flow", "s/flow", extra={"retry_503": {TOOLKIT: 0, PREFECT: 0}})
    server_mem = Samples("server_memory", "MB")
    test_mem = Samples("test_process_memory", "MB")
    flows_and_mem = (trivial, three, server_mem, test_mem)

    warm_cache = bench.warm_cache

    def record(harness: str, result: dict[str, Any]) -> None:
        if entry:
            warm.add(harness, [result["enter_seconds"]])
            exit_.add(harness, [result["exit_seconds"]])
            if harness == PREFECT:
                # Prefect caches nothing between processes: cold and warm are one.
                cold.add(harness, [result["enter_seconds"]])
        if clean_db:
            if "clean_db_error" in result:
                clean.errors.append(result["clean_db_error"])
            clean.add(harness, result.get("clean_db_seconds", []))
        trivial.add(harness, result["trivial_seconds"])
        three.add(harness, result["three_task_seconds"])
        three.extra["retry_503"][harness] += result["retry_503"]
        server_mem.add(harness, [result["server_peak_rss"] / MB])
        test_mem.add(harness, [result["test_process_maxrss"] / MB])

    for rep in range(repeat):
        flows = {
            "trivial": _split(trivial_flows, repeat, rep),
            "three": _split(three_flows, repeat, rep),
        }
        resets = {TOOLKIT: 3, PREFECT: 1} if clean_db else {TOOLKIT: 0, PREFECT: 0}
        steps = [(PREFECT, "session", None), (TOOLKIT, "session", warm_cache)]
        if entry:
            steps.insert(0, (TOOLKIT, "entry", bench.fresh_cache()))
        if rep % 2:
            steps.reverse()
        for harness, mode, cache in steps:
            label = {None: "", warm_cache: ", warm cache"}.get(cache, ", empty cache")
            bench.log(f"rep {rep + 1}/{repeat}: {harness} {mode}{label}")
            try:
                if mode == "entry":
                    cold.add(
                        TOOLKIT,
                        [run_worker(bench, harness, mode, cache_dir=cache)["enter_seconds"]],
                    )
                else:
                    result = run_worker(
                        bench, harness, mode, cache_dir=cache, resets=resets[harness], **flows
                    )
                    record(harness, result)
            except WorkloadError as exc:
                bench.log(f"  FAILED: {exc}")
                affected = [cold] if mode == "entry" else [warm, exit_, clean, *flows_and_mem]
                for samples in affected:
                    samples.errors.append(str(exc))
    three.extra["flows"] = {TOOLKIT: len(three.toolkit), PREFECT: len(three.prefect)}
    picked = [*flows_and_mem]
    if entry:
        picked = [cold, warm, exit_, *picked]
    if clean_db:
        picked.insert(3 if entry else 0, clean)
    return picked


# metric: (unit, result key, result key of its 503 count or None)
BACKEND_METRICS = {
    "entry_warm": ("s", "enter_seconds", None),
    "clean_db": ("s", "clean_db_seconds", None),
    "three_task_flow": ("s/flow", "three_task_seconds", "three_retry_503"),
    "fifty_task_flow": ("s/flow", "fifty_task_seconds", "fifty_retry_503"),
}


def backends(bench: Bench, *, repeat: int, flows: int) -> list[Samples]:
    """The toolkit on SQLite and on PostgreSQL, each beside Prefect's harness (SQLite only).

    Rows are named ``<metric>@<backend>``; their Prefect figures come from the same
    Prefect sessions, so both backends are compared with one baseline.
    """
    rows = {
        (metric, database): Samples(
            f"{metric}@{database}",
            unit,
            extra={"retry_503": {TOOLKIT: 0, PREFECT: 0}} if retries else {},
        )
        for metric, (unit, _, retries) in BACKEND_METRICS.items()
        for database in ("sqlite", "postgresql")
    }
    for rep in range(repeat):
        count = max(_split(flows, repeat, rep), 1)
        steps = [(PREFECT, "sqlite"), (TOOLKIT, "sqlite"), (TOOLKIT, "postgresql")]
        if rep % 2:
            steps.reverse()
        for harness, database in steps:
            bench.log(f"rep {rep + 1}/{repeat}: backends, {harness} on {database}")
            try:
                result = run_worker(
                    bench,
                    harness,
                    "session",
                    cache_dir=bench.warm_cache,
                    three=count,
                    fifty=count,
                    resets=3 if harness == TOOLKIT else 1,
                    database=database,
                )
            except WorkloadError as exc:
                bench.log(f"  FAILED: {exc}")
                targets = [r for (_, db), r in rows.items() if harness == PREFECT or db == database]
                for samples in targets:
                    samples.errors.append(str(exc))
                continue
            for metric, (_, key, retries) in BACKEND_METRICS.items():
                values = result.get(key, [])
                values = values if isinstance(values, list) else [values]
                for db in ("sqlite", "postgresql") if harness == PREFECT else (database,):
                    samples = rows[(metric, db)]
                    samples.add(harness, values)
                    if retries is not None:
                        samples.extra["retry_503"][harness] += result[retries]
    return list(rows.values())


def suite(bench: Bench, *, repeat: int, cache_dir: Path | None) -> list[Samples]:
    """Wall time of pytest running the 20-test suite, sequentially and with ``-n 2``."""
    results = {"seq": Samples("suite_seq", "s"), "n2": Samples("suite_n2", "s")}
    for rep in range(repeat):
        order = [(TOOLKIT, "seq"), (PREFECT, "seq"), (TOOLKIT, "n2"), (PREFECT, "n2")]
        if rep % 2:
            order = [(PREFECT, "seq"), (TOOLKIT, "seq"), (PREFECT, "n2"), (TOOLKIT, "n2")]
        for harness, variant in order:
            bench.log(f"rep {rep + 1}/{repeat}: suite {variant} with {harness}")
            try:
                seconds = _run_suite(bench, harness, variant, cache_dir)
            except WorkloadError as exc:
                bench.log(f"  FAILED: {exc}")
                results[variant].errors.append(str(exc))
            else:
                results[variant].add(harness, [seconds])
    return list(results.values())


def _run_suite(bench: Bench, harness: str, variant: str, cache_dir: Path | None) -> float:
    out = bench.new_dir(f"suite-{harness}-{variant}")
    argv = [sys.executable, "-m", "pytest", "-q", "-c", str(SUITE / "pytest.ini"), str(SUITE)]
    if variant == "n2":
        argv += ["-n", "2"]
    if harness == PREFECT:
        # The toolkit's plugin is not what is being measured here; keep it out.
        argv += ["-p", "no:prefect_testkit"]
    return _timed_pytest(bench, argv, out, bench.env(harness, cache_dir), f"{harness}, {variant}")


def _timed_pytest(
    bench: Bench,
    argv: list[str],
    out: Path,
    env: dict[str, str],
    what: str,
    cwd: Path | None = None,
) -> float:
    """Wall seconds of one pytest run; its failure or timeout raises, naming ``what``."""
    started = time.perf_counter()
    proc = _start(bench, argv, out, env, stdin=subprocess.DEVNULL, cwd=cwd)
    try:
        proc.wait(timeout=bench.timeout * 3)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise _failure(out, f"pytest ({what}) timed out") from None
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise _failure(out, f"pytest ({what}) exited with {proc.returncode}")
    return seconds


# The real suites' pytest runs: the variant's arguments.
XDIST_WORKERS = 2
REAL_VARIANTS = {"seq": [], "n2": ["-n", str(XDIST_WORKERS)]}
# What each side adds to pytest; every side leaves the toolkit's pytest plugin out, so that
# only the harness differs. The drop-in is the compatibility matrix's (tools/compat), with
# a check that also counts xdist workers (dropin.py).
REAL_SIDES = {
    TOOLKIT: ["-p", "no:prefect_testkit", "-p", "bench.dropin"],
    PREFECT: ["-p", "no:prefect_testkit"],
    FLOOR: ["-p", "no:prefect_testkit", "-p", "bench.floor"],
}
# The floor's servers: one per xdist worker (the first for sequential runs).
FLOOR_SERVERS = XDIST_WORKERS
_READY_SECONDS = 180.0  # for a floor's server to start, or to empty its database


def real_suites(bench: Bench, *, repeat: int, suites: list[upstream.Suite]) -> list[Samples]:
    """Upstream suites, unchanged, with the toolkit's harness, Prefect's, and the floor.

    Per repetition, suite and variant (sequential, ``-n 2``) the three sides run one after
    the other, the order rotated every repetition. The toolkit's harness is swapped in
    from outside the files by the drop-in plugin, as a user's one-line change would;
    Prefect's is the suite as released; the floor replaces the harness with a no-op on a
    server started before the timed runs (floor.py): one per xdist worker, as each side
    has one per worker, their databases emptied before each run.
    """
    rows: dict[tuple[str, str], Samples] = {
        (suite.name, variant): Samples(
            f"real_suite_{variant}@{suite.name}",
            "s",
            floor=[],
            extra={"suite": suite.name, "variant": variant, "tests": {}},
        )
        for suite in suites
        for variant in REAL_VARIANTS
    }
    ready: list[tuple[upstream.Suite, Path]] = []
    for suite in suites:
        bench.log(f"real suites: {suite.name}, tests from its sdist")
        try:
            ready.append((suite, _fetch_suite(bench, suite)))
        except WorkloadError as exc:
            bench.log(f"  FAILED: {exc}")
            for variant in REAL_VARIANTS:
                rows[(suite.name, variant)].errors.append(str(exc))
    if not ready:
        return list(rows.values())
    with _floor_servers(bench, FLOOR_SERVERS) as servers:
        for rep in range(repeat):
            sides = [TOOLKIT, PREFECT, FLOOR]
            sides = sides[rep % 3 :] + sides[: rep % 3]
            for suite, directory in ready:
                for variant in REAL_VARIANTS:
                    samples = rows[(suite.name, variant)]
                    for side in sides:
                        bench.log(f"rep {rep + 1}/{repeat}: {suite.name} {variant} with {side}")
                        try:
                            env = _real_env(bench, side, servers)
                            seconds, tests = _run_real(bench, suite, directory, side, variant, env)
                        except WorkloadError as exc:
                            bench.log(f"  FAILED: {exc}")
                            samples.errors.append(str(exc))
                        else:
                            samples.add(side, [seconds])
                            samples.extra["tests"][side] = tests
    return list(rows.values())


def _fetch_suite(bench: Bench, suite: upstream.Suite) -> Path:
    """The suite's directory; refused unless its release is the one installed here."""
    installed = upstream.installed_version(suite)
    if installed != suite.version:
        raise WorkloadError(
            f"{suite.requirement} is needed, {installed or 'nothing'} is installed "
            "(nox -s bench installs the suites that support its Prefect)"
        )
    try:
        return upstream.fetch(suite, bench.workdir / "real-suites")
    except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
        raise WorkloadError(f"could not get the tests of {suite.name}: {exc}") from exc


def _real_env(bench: Bench, side: str, servers: list[_FloorServer]) -> dict[str, str]:
    if side == PREFECT:
        return bench.env(PREFECT, None)
    # The drop-in (bench.dropin) and the floor (bench.floor) are plugins under tools/.
    env = bench.env(side, bench.warm_cache if side == TOOLKIT else None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    if side == FLOOR:
        if not servers:
            raise WorkloadError("the floor's servers did not start (see their log above)")
        for server in servers:
            server.reset()
        env[floor.SERVERS_ENV] = json.dumps([server.address for server in servers])
    return env


def _run_real(
    bench: Bench,
    suite: upstream.Suite,
    directory: Path,
    side: str,
    variant: str,
    env: dict[str, str],
) -> tuple[float, dict[str, int]]:
    """Wall seconds of pytest on the suite, and its counts of tests (from JUnit XML)."""
    out = bench.new_dir(f"real-{directory.name}-{side}-{variant}")
    junit = out / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "-q", *REAL_SIDES[side], *REAL_VARIANTS[variant]]
    argv += [*suite.pytest_args(), "--junitxml", str(junit), "tests"]
    what = f"{directory.name}, {side}, {variant}"
    seconds = _timed_pytest(bench, argv, out, env, what, cwd=directory)
    return seconds, _junit_counts(junit)


def _junit_counts(path: Path) -> dict[str, int]:
    suites = list(ElementTree.parse(path).getroot().iter("testsuite"))
    keys = ("tests", "failures", "errors", "skipped")
    return {key: sum(int(suite.get(key, 0)) for suite in suites) for key in keys}


@contextlib.contextmanager
def _floor_servers(bench: Bench, count: int) -> Iterator[list[_FloorServer]]:
    """The floor's running servers, or none if one did not start (the floor then fails)."""
    bench.log(f"real suites: starting the floor's {count} servers (not timed)")
    servers: list[_FloorServer] = []
    try:
        for index in range(count):
            out = bench.new_dir(f"floor-server-{index}")
            argv = [sys.executable, str(WORKER), "--harness", TOOLKIT, "--mode", "serve"]
            env = bench.env(TOOLKIT, bench.warm_cache)
            proc = _start(bench, [*argv, "--out", str(out)], out, env, stdin=subprocess.PIPE)
            servers.append(_FloorServer(bench, proc, out))
        try:
            for server in servers:
                server.address = server.wait_for(server.out / "ready.json", "start")
        except WorkloadError as exc:
            bench.log(f"  FAILED: {exc}")
            yield []
        else:
            yield servers
    finally:
        for server in servers:
            server.stop()


@dataclass
class _FloorServer:
    """One of the floor's servers: a toolkit harness held by a worker (``--mode serve``)."""

    bench: Bench
    proc: subprocess.Popen[bytes]
    out: Path
    address: dict[str, Any] = field(default_factory=dict)  # api_url, api_auth_string
    resets: int = 0

    def reset(self) -> None:
        """Empty its database before a timed run (not timed)."""
        assert self.proc.stdin is not None
        self.resets += 1
        try:
            self.proc.stdin.write(b"reset\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise _failure(self.out, "the floor's server is gone") from None
        self.wait_for(self.out / "reset.json", "reset", lambda done: done["resets"] >= self.resets)

    def wait_for(
        self, path: Path, what: str, done: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        """The worker's JSON file once ``done`` says it is, while the worker lives."""
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            if path.exists():
                data: dict[str, Any] = json.loads(path.read_text())
                if done(data):
                    return data
            if self.proc.poll() is not None:
                raise _failure(self.out, f"the floor's server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise _failure(self.out, f"the floor's server did not {what} in time")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
        _reap_servers(self.bench, self.out)


def four_workers(bench: Bench, *, workers: int, cache_dir: Path | None) -> list[Samples]:
    """Total server RSS of ``workers`` toolkit harnesses alive at once vs. one Prefect server."""
    samples = Samples("four_workers_memory", "MB", extra={"workers": workers})
    for harness, count in ((TOOLKIT, workers), (PREFECT, 1)):
        bench.log(f"memory: {count} {harness} harness(es) at once")
        try:
            total = _hold(bench, harness, count, cache_dir if harness == TOOLKIT else None)
        except WorkloadError as exc:
            bench.log(f"  FAILED: {exc}")
            samples.errors.append(str(exc))
        else:
            samples.add(harness, [total / MB])
    return [samples]


def _hold(bench: Bench, harness: str, count: int, cache_dir: Path | None) -> int:
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for _ in range(count):
            out = bench.new_dir(f"{harness}-hold")
            argv = [sys.executable, str(WORKER), "--harness", harness, "--mode", "hold"]
            argv += ["--out", str(out), "--trivial", "3"]
            env = bench.env(harness, cache_dir)
            procs.append((_start(bench, argv, out, env, stdin=subprocess.PIPE), out))
        deadline = time.monotonic() + bench.timeout * count
        while not all((out / "ready.json").exists() for _, out in procs):
            for proc, out in procs:
                if proc.poll() is not None:
                    raise _failure(out, f"{harness} hold worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise WorkloadError(f"{count} {harness} hold workers not ready in time")
            time.sleep(0.2)
        return sum(
            json.loads((out / "ready.json").read_text())["server_peak_rss"] for _, out in procs
        )
    finally:
        for proc, _ in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc, out in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
            _reap_servers(bench, out)


def _is_server_factory(proc: psutil.Process) -> bool:
    """The toolkit's server factory idles on by design; the servers it forks do not.

    Forked servers share the factory's command line; the factory is the one whose parent
    is not a factory.
    """

    def factory_cmdline(p: psutil.Process | None) -> bool:
        try:
            return p is not None and "prefect_testkit._launch.factory" in " ".join(p.cmdline())
        except psutil.Error:
            return False

    try:
        return factory_cmdline(proc) and not factory_cmdline(proc.parent())
    except psutil.Error:
        return False


# The local PostgreSQL cluster's supervisor stops it 2 s after its last harness left.
_CLUSTER_GRACE_SECONDS = 10.0


def leftover_servers(bench: Bench) -> list[dict[str, Any]]:
    """Processes still alive that this run started (found by the environment marker)."""
    deadline = time.monotonic() + _CLUSTER_GRACE_SECONDS
    while time.monotonic() < deadline and any(
        "prefect_testkit._postgres.supervisor" in " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(["cmdline"])
    ):
        time.sleep(0.2)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        if _environ(proc).get(MARKER_ENV) == bench.run_id and not _is_server_factory(proc):
            found.append({"pid": proc.pid, "cmdline": " ".join(proc.info["cmdline"] or [])})
    found_pids = {entry["pid"] for entry in found}
    for pid in bench.server_pids - found_pids:
        if psutil.pid_exists(pid):
            found.append({"pid": pid, "cmdline": "(recorded server pid still exists)"})
    return found
