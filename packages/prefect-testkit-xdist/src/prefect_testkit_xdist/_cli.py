"""`prefect-testkit`: inspect and clean up leases from a shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from ._errors import AllocatorError
from ._leases import LeaseRecord, clean, list_leases
from ._lockdir import bazel_note, configured_lock_dir, filesystem_type


def _format_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _as_json(record: LeaseRecord) -> dict[str, object]:
    return {
        "kind": record.kind,
        "resource": record.resource,
        "path": None if record.path is None else str(record.path),
        "lock_path": str(record.lock_path),
        "pid": record.pid,
        "start_time": record.start_time,
        "cmdline": record.cmdline,
        "worker": record.worker,
        "run_id": record.run_id,
        "acquired_at": record.acquired_at,
        "age": record.age,
    }


def _leases(args: argparse.Namespace) -> int:
    records = list_leases()
    if args.json:
        print(json.dumps([_as_json(record) for record in records], indent=2))
        return 0
    if not records:
        print(f"no live leases in {configured_lock_dir()}")
        return 0
    rows = [
        (
            record.resource,
            "?" if record.pid is None else str(record.pid),
            _format_age(record.age),
            record.worker,
            record.short_cmdline,
        )
        for record in records
    ]
    header = ("RESOURCE", "PID", "AGE", "WORKER", "COMMAND")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(4)]
    for row in [header, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*padded, row[4]]))
    return 0


def _clean(args: argparse.Namespace) -> int:
    # Cleanup hooks log what they release (a dropped database, say): show it.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    removed = clean()
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print(f"nothing to remove in {configured_lock_dir()}")
    return 0


def _where(args: argparse.Namespace) -> int:
    path = configured_lock_dir()
    print(f"lock directory: {path}")
    print(f"filesystem: {filesystem_type(path) or 'unknown'}")
    if (note := bazel_note()) is not None:
        print(f"note: {note}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefect-testkit",
        description="Inspect and clean the port and directory leases of prefect-testkit.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    leases = commands.add_parser("leases", help="list live leases (resource, pid, age, command)")
    leases.add_argument("--json", action="store_true", help="print the leases as JSON")
    leases.set_defaults(handler=_leases)
    cleaner = commands.add_parser(
        "clean", help="remove directories and records that no live process holds"
    )
    cleaner.set_defaults(handler=_clean)
    where = commands.add_parser("where", help="show the lock directory in use")
    where.set_defaults(handler=_where)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except AllocatorError as error:
        print(f"prefect-testkit: error: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
