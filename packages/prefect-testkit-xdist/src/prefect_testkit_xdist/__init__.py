"""Machine-wide, crash-safe leases of ports and database directories for parallel test runs."""

from __future__ import annotations

from ._directories import DirectoryLease, lease_directory
from ._errors import (
    AllocatorConfigError,
    AllocatorError,
    LockDirError,
    LockTimeoutError,
    PoolExhaustedError,
)
from ._files import copy_private, make_private_dir, open_private, write_private
from ._identity import WorkerIdentity, worker_identity
from ._leases import LeaseRecord, clean, list_leases
from ._lockdir import lock_dir
from ._locks import HeldFileLock, is_file_locked, lock_file, try_lock_file
from ._ports import DEFAULT_PORT_RANGE, PortLease, lease_port, parse_port_range

__all__ = [
    "DEFAULT_PORT_RANGE",
    "AllocatorConfigError",
    "AllocatorError",
    "DirectoryLease",
    "HeldFileLock",
    "LeaseRecord",
    "LockDirError",
    "LockTimeoutError",
    "PoolExhaustedError",
    "PortLease",
    "WorkerIdentity",
    "clean",
    "copy_private",
    "is_file_locked",
    "lease_directory",
    "lease_port",
    "list_leases",
    "lock_dir",
    "lock_file",
    "make_private_dir",
    "open_private",
    "parse_port_range",
    "try_lock_file",
    "worker_identity",
    "write_private",
]
