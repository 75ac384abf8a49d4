"""Starting, watching and SIGKILLing the storm's pytest sessions."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

SUITE = Path(__file__).resolve().parent / "suite"
RUN_ID_ENV = "STORM_RUN_ID"
SESSION_ID_ENV = "STORM_SESSION_ID"
RECORD_DIR_ENV = "STORM_RECORD_DIR"
LOCK_DIR_ENV = "PREFECT_TESTKIT_LOCK_DIR"
# SIGKILL cannot be caught, but a loaded machine may take a moment to reap a group.
GROUP_EXIT_TIMEOUT = 10.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class StormConfig:
    duration: float
    concurrency: int
    kill_probability: float
    seed: int
    sessions_max: int | None
    session_timeout: float
    grace: float
    # Until a session has passed, kills are spread over this many seconds after a start.
    kill_window: float = 30.0
    workers: int = 2


@dataclass
class Session:
    index: int
    name: str
    directory: Path
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started_at: float
    timeout_at: float
    kill_at: float | None
    ended_at: float | None = None
    returncode: int | None = None
    killed_at: float | None = None
    gone_at: float | None = None
    timed_out: bool = False
    stragglers: list[int] = field(default_factory=list)

    @property
    def junit_path(self) -> Path:
        return self.directory / "junit.xml"

    @property
    def log_path(self) -> Path:
        return self.directory / "pytest.log"

    @property
    def killed(self) -> bool:
        """SIGKILLed on purpose, as the storm planned (not for a timeout)."""
        return self.killed_at is not None and not self.timed_out

    @property
    def finished_at(self) -> float | None:
        """When nothing of the session's process group was left."""
        return self.gone_at if self.killed_at is not None else self.ended_at

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.killed:
            return "killed"
        if self.returncode is None:
            return "running"
        return f"exited {self.returncode}"


def session_command(junit: Path, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        str(workers),
        # The suite's own ini: the repository's configuration must not leak in.
        "-c",
        str(SUITE / "pytest.ini"),
        "--rootdir",
        str(SUITE),
        f"--junitxml={junit}",
        str(SUITE),
    ]


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


class Storm:
    """Keeps ``concurrency`` sessions running until the duration or the count runs out."""

    def __init__(
        self,
        config: StormConfig,
        *,
        run_id: str,
        lock_dir: Path,
        record_dir: Path,
        sessions_dir: Path,
        say: Callable[[str], None],
    ) -> None:
        self.config = config
        self.sessions: list[Session] = []
        self._run_id = run_id
        self._lock_dir = lock_dir
        self._record_dir = record_dir
        self._sessions_dir = sessions_dir
        self._say = say
        self._rng = random.Random(config.seed)
        self._running: list[Session] = []
        self._settling: list[tuple[float, Session]] = []
        self.deadline_hit = False

    def run(self, hard_deadline: float, on_settled: Callable[[Session], None]) -> None:
        """Run the storm; ``on_settled`` gets each session ``grace`` s after it finished.

        ``hard_deadline`` is a ``time.monotonic()`` value: past it every session still
        running is killed and the storm stops starting new ones.
        """
        stop_starting = time.monotonic() + self.config.duration
        while True:
            now = time.monotonic()
            if now > hard_deadline and not self.deadline_hit:
                self.deadline_hit = True
                self._say("hard deadline reached: killing every running session")
                for session in list(self._running):
                    self._kill(session, timed_out=True)
            self._reap()
            for session in list(self._running):
                if now >= session.timeout_at:
                    self._say(f"{session.name}: timed out after {self.config.session_timeout:g} s")
                    self._kill(session, timed_out=True)
                elif session.kill_at is not None and now >= session.kill_at:
                    self._kill(session, timed_out=False)
            while self._may_start(now, stop_starting):
                self._start()
            self._settle(now, on_settled)
            if not self._running and not self._settling and not self._may_start(now, stop_starting):
                return
            time.sleep(POLL_SECONDS)

    def _may_start(self, now: float, stop_starting: float) -> bool:
        limit = self.config.sessions_max
        return (
            not self.deadline_hit
            and now < stop_starting
            and len(self._running) < self.config.concurrency
            and (limit is None or len(self.sessions) < limit)
        )

    def _typical_seconds(self) -> float:
        passed = [
            s.ended_at - s.started_at
            for s in self.sessions
            if s.returncode == 0 and s.ended_at is not None and s.killed_at is None
        ]
        return statistics.median(passed) if passed else self.config.kill_window

    def _start(self) -> None:
        index = len(self.sessions)
        name = f"s{index:04d}"
        directory = self._sessions_dir / name
        directory.mkdir(parents=True)
        # Both draws are made for every session, so a seed fixes all choices whatever the
        # timing; only the moment of a kill scales with how long sessions take here.
        kill = self._rng.random() < self.config.kill_probability
        fraction = self._rng.uniform(0.02, 1.0)
        now = time.monotonic()
        kill_at = now + fraction * self._typical_seconds() if kill else None
        env = {
            **os.environ,
            RUN_ID_ENV: self._run_id,
            SESSION_ID_ENV: name,
            RECORD_DIR_ENV: str(self._record_dir),
            LOCK_DIR_ENV: str(self._lock_dir),
        }
        log = (directory / "pytest.log").open("wb")
        process = subprocess.Popen(
            session_command(directory / "junit.xml", self.config.workers),
            cwd=SUITE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so that a kill takes pytest and its xdist workers at once.
            start_new_session=True,
        )
        session = Session(
            index=index,
            name=name,
            directory=directory,
            process=process,
            log=log,
            started_at=time.time(),
            timeout_at=now + self.config.session_timeout,
            kill_at=kill_at,
        )
        self.sessions.append(session)
        self._running.append(session)
        plan = f", kill planned after {kill_at - now:.1f} s" if kill_at is not None else ""
        self._say(f"{name}: started (pid {process.pid}){plan}")

    def _reap(self) -> None:
        for session in list(self._running):
            returncode = session.process.poll()
            if returncode is None:
                continue
            session.returncode = returncode
            session.ended_at = time.time()
            self._finish(session)
            took = session.ended_at - session.started_at
            self._say(f"{session.name}: exited {returncode} after {took:.1f} s")

    def _kill(self, session: Session, *, timed_out: bool) -> None:
        pgid = session.process.pid
        members = group_members(pgid)
        session.timed_out = timed_out
        session.killed_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        session.returncode = session.process.wait()
        psutil.wait_procs(members, timeout=GROUP_EXIT_TIMEOUT)
        # Members forked between the listing and the kill got the signal too: look again.
        psutil.wait_procs(group_members(pgid), timeout=GROUP_EXIT_TIMEOUT)
        session.stragglers = [p.pid for p in group_members(pgid)]
        session.gone_at = time.time()
        session.ended_at = session.gone_at
        self._finish(session)
        took = session.killed_at - session.started_at
        self._say(f"{session.name}: SIGKILLed after {took:.1f} s" + (" (timeout)" * timed_out))

    def _finish(self, session: Session) -> None:
        session.log.close()
        self._running.remove(session)
        self._settling.append((time.monotonic() + self.config.grace, session))

    def _settle(self, now: float, on_settled: Callable[[Session], None]) -> None:
        for entry in list(self._settling):
            due, session = entry
            if now >= due:
                self._settling.remove(entry)
                on_settled(session)
