"""Split a suite into stable shards: Bazel's test sharding protocol, or ``--prefect-shard``."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

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
    """The shard Bazel asked for through ``TEST_TOTAL_SHARDS``/``TEST_SHARD_INDEX``, if any."""
    total_raw = os.environ.get(BAZEL_TOTAL_ENV, "").strip()
    index_raw = os.environ.get(BAZEL_INDEX_ENV, "").strip()
    if not total_raw and not index_raw:
        return None
    if not total_raw or not index_raw:
        missing = BAZEL_TOTAL_ENV if not total_raw else BAZEL_INDEX_ENV
        raise ValueError(
            f"{BAZEL_TOTAL_ENV}={total_raw!r} and {BAZEL_INDEX_ENV}={index_raw!r}: "
            f"{missing} is missing; Bazel sets both (shard_count on the test rule), so set "
            "both or neither"
        )
    try:
        total, index = int(total_raw), int(index_raw)
    except ValueError:
        raise ValueError(
            f"{BAZEL_TOTAL_ENV}={total_raw!r} and {BAZEL_INDEX_ENV}={index_raw!r} must be "
            "integers (Bazel sets them from shard_count)"
        ) from None
    _validate(index, total, f"{BAZEL_INDEX_ENV}={index_raw}, {BAZEL_TOTAL_ENV}={total_raw}")
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
