"""Files the harness writes are its owner's alone (0600), whatever the umask says.

One helper makes every private file and directory, the lease allocator's, which writes
private files too and sits below us; see `prefect_testkit_xdist._files` for how.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from prefect_testkit_xdist import copy_private, make_private_dir, open_private, write_private

__all__ = [
    "copy_private",
    "make_private_dir",
    "open_private",
    "open_private_append",
    "write_private",
]


def open_private_append(path: Path) -> BinaryIO:
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab")
