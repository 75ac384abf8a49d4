"""Who is running: an xdist worker, a Bazel shard, a nox session, or a plain process."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from ._config import env_value
from ._errors import AllocatorConfigError

XDIST_RUN_ID_ENV = "PYTEST_XDIST_TESTRUNUID"
XDIST_WORKER_ENV = "PYTEST_XDIST_WORKER"
XDIST_WORKER_COUNT_ENV = "PYTEST_XDIST_WORKER_COUNT"
BAZEL_SHARD_INDEX_ENV = "TEST_SHARD_INDEX"
BAZEL_TOTAL_SHARDS_ENV = "TEST_TOTAL_SHARDS"
NOX_SESSION_ENV = "NOX_CURRENT_SESSION"

# Without xdist there is no run id; a fixed one lets a later plain run reuse (after wiping) the
# directory an earlier one left behind instead of piling up a new one per process.
LOCAL_RUN_ID = "local"
MAIN_WORKER = "main"

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9.-]+")
# xdist run ids are 32 hex digits; 12 keep collisions between concurrent runs negligible while
# keeping paths short enough for humans and for AF_UNIX-length limits of tools placed inside.
_RUN_ID_CHARS = 12
_PART_CHARS = 24


@dataclass(frozen=True)
class WorkerIdentity:
    """The current process's place in a parallel test run."""

    run_id: str
    worker: str
    pid: int
    xdist_worker: str | None = None
    xdist_worker_count: int | None = None
    shard_index: int | None = None
    shard_total: int | None = None
    nox_session: str | None = None

    @property
    def is_parallel(self) -> bool:
        """True under xdist or Bazel sharding, where sibling processes compete for resources."""
        return self.xdist_worker is not None or self.shard_index is not None

    @property
    def slug(self) -> str:
        """A short, filesystem-safe name, unique per nox session, run and worker."""
        parts = [self.run_id[:_RUN_ID_CHARS], self.worker]
        if self.nox_session is not None:
            parts.insert(0, self.nox_session)
        safe = [_safe_part(part) for part in parts]
        slug = "_".join(safe)
        if any(len(part) > _PART_CHARS for part in safe) or any(
            _safe_part(part) != part for part in parts
        ):
            # Truncation or sanitising may map two identities onto one name; a digest of the
            # originals keeps them apart.
            digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
            slug = "_".join([*(part[:_PART_CHARS] for part in safe), digest])
        return slug


def _safe_part(value: str) -> str:
    return _UNSAFE_CHARACTERS.sub("-", value).strip("-.") or "x"


def _int_env(name: str, *, minimum: int) -> int | None:
    raw = env_value(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise AllocatorConfigError(
            f"{name}={raw!r} is not an integer; it must be an integer >= {minimum} "
            "(it is normally set by the test runner, so check what sets it)"
        ) from None
    if value < minimum:
        raise AllocatorConfigError(
            f"{name}={raw!r} is below {minimum}; it must be an integer >= {minimum}"
        )
    return value


def worker_identity() -> WorkerIdentity:
    """Read the current identity from the environment (each call reads it afresh)."""
    xdist_worker = env_value(XDIST_WORKER_ENV)
    xdist_count = _int_env(XDIST_WORKER_COUNT_ENV, minimum=1)
    shard_index = _int_env(BAZEL_SHARD_INDEX_ENV, minimum=0)
    shard_total = _int_env(BAZEL_TOTAL_SHARDS_ENV, minimum=1)
    if shard_index is not None and shard_total is not None and shard_index >= shard_total:
        raise AllocatorConfigError(
            f"{BAZEL_SHARD_INDEX_ENV}={shard_index} is not below "
            f"{BAZEL_TOTAL_SHARDS_ENV}={shard_total}; the index must be in 0..total-1"
        )
    workers = []
    if shard_index is not None:
        workers.append(f"shard-{shard_index}")
    if xdist_worker is not None:
        workers.append(xdist_worker)
    return WorkerIdentity(
        run_id=env_value(XDIST_RUN_ID_ENV) or LOCAL_RUN_ID,
        worker="-".join(workers) or MAIN_WORKER,
        pid=os.getpid(),
        xdist_worker=xdist_worker,
        xdist_worker_count=xdist_count,
        shard_index=shard_index,
        shard_total=shard_total,
        nox_session=env_value(NOX_SESSION_ENV),
    )
