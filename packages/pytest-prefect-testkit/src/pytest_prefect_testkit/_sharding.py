"""Split a suite into stable shards: Bazel's test sharding protocol, or ``--prefect-shard``."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from prefect_testkit_xdist import AllocatorConfigError, worker_identity

BAZEL_TOTAL_ENV = "TEST_TOTAL_SHARDS"
BAZEL_INDEX_ENV = "TEST_SHARD_INDEX"
BAZEL_STATUS_FILE_ENV = "TEST_SHARD_STATUS_FILE"
BAZEL_XML_ENV = "XML_OUTPUT_FILE"

_SHARD = re.compile(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*")


@dataclass(frozen=True)
class ShardSpec:
    index: int
    total: int
    source: str

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def shard_of(nodeid: str, total: int) -> int:
    """The shard (0-based, of ``total``) that runs the test with this node id.

    crc32 of the UTF-8 node id: the same on every machine, Python version and
    ``PYTHONHASHSEED``, and independent of collection order, so shards of one suite
    computed by separate processes never overlap and never miss a test.
    """
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    return zlib.crc32(nodeid.encode("utf-8")) % total


def _validate(index: int, total: int, what: str) -> None:
    if total < 1:
        raise ValueError(f"the total number of shards must be at least 1, got {total} ({what})")
    if not 0 <= index < total:
        raise ValueError(
            f"the shard index must be in 0..{total - 1} (0 <= INDEX < TOTAL), got {index} ({what})"
        )


def parse_shard(raw: str) -> ShardSpec:
    """``"INDEX/TOTAL"`` with ``0 <= INDEX < TOTAL``; ValueError naming the fix otherwise."""
    match = _SHARD.fullmatch(raw)
    if match is None:
        raise ValueError("expected INDEX/TOTAL with 0-based INDEX, e.g. --prefect-shard=0/3")
    index, total = int(match.group(1)), int(match.group(2))
    _validate(index, total, "e.g. --prefect-shard=0/3 runs the first of three shards")
    return ShardSpec(index, total, "--prefect-shard")


def bazel_shard() -> ShardSpec | None:
    """The shard Bazel asked for through ``TEST_TOTAL_SHARDS``/``TEST_SHARD_INDEX``, if any.

    Read through the allocator's worker identity, the one parser of those variables.
    """
    try:
        identity = worker_identity()
    except AllocatorConfigError as exc:
        raise ValueError(str(exc)) from None
    index, total = identity.shard_index, identity.shard_total
    if index is None and total is None:
        return None
    if index is None or total is None:
        missing = BAZEL_TOTAL_ENV if total is None else BAZEL_INDEX_ENV
        raise ValueError(
            f"{missing} is missing beside {BAZEL_INDEX_ENV if total is None else BAZEL_TOTAL_ENV}"
            "; Bazel sets both (shard_count on the test rule), so set both or neither"
        )
    return ShardSpec(index, total, "Bazel")


def configure_sharding(config: pytest.Config, cli_shard: ShardSpec | None) -> ShardSpec | None:
    """Settle which shard this run is, and speak Bazel's side of the protocol."""
    try:
        bazel = bazel_shard()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if bazel is not None and cli_shard is not None and bazel != cli_shard:
        raise pytest.UsageError(
            f"--prefect-shard={cli_shard} conflicts with Bazel's shard {bazel} "
            f"({BAZEL_INDEX_ENV}/{BAZEL_TOTAL_ENV}); under `bazel test` drop --prefect-shard "
            "and set shard_count on the test rule"
        )
    if bazel is not None:
        status_file = os.environ.get(BAZEL_STATUS_FILE_ENV)
        if status_file:
            # Touching it tells Bazel the runner understood sharding; without it Bazel
            # assumes every shard ran the whole suite.
            Path(status_file).touch()
    xml_output = os.environ.get(BAZEL_XML_ENV)
    if xml_output and not getattr(config.option, "xmlpath", None):
        # Bazel collects results from here; an explicit --junitxml still wins.
        config.option.xmlpath = xml_output
    return bazel or cli_shard


def select_shard(config: pytest.Config, items: list[pytest.Item], shard: ShardSpec) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if shard_of(item.nodeid, shard.total) == shard.index else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
