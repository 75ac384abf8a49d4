"""Files the harness writes are its owner's alone (0600), whatever the umask says."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO


def copy_private(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    target.chmod(0o600)


def open_private_append(path: Path) -> BinaryIO:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
