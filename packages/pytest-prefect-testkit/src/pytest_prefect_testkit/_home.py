"""A private Prefect home for the test session, set up before Prefect is first imported.

Importing Prefect creates its home (``~/.prefect`` unless ``PREFECT_HOME`` says otherwise)
and reads the active profile from ``profiles.toml`` there. A test session should depend on
neither: on a fresh machine the home is created as a side effect, in a read-only sandbox
(Bazel) creating it fails, and a developer's Prefect Cloud profile would bring its API URL
and key into the tests. So, unless the user chose a home or a profiles file themselves, the
plugin points ``PREFECT_HOME`` at an empty private directory and ``PREFECT_PROFILES_PATH``
at a ``profiles.toml`` in it that does not exist, and unsets ``PREFECT_PROFILE``, which
names a profile of the user's file. Everything is put back, and the directory removed, when
pytest unconfigures.

The directory is leased (``prefect_testkit_xdist.lease_directory``): a session that is
killed leaves it to ``prefect-testkit clean``, or to the next session of the same name,
which empties it first. xdist workers inherit the variables from the controller, find
``PREFECT_HOME`` set and leave it alone: only the process that made the directory removes it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prefect_testkit_xdist import AllocatorError, DirectoryLease, lease_directory
from pytest_prefect_testkit._options import PRIVATE_HOME_INI, private_home_enabled

HOME_ENV = "PREFECT_HOME"
PROFILES_PATH_ENV = "PREFECT_PROFILES_PATH"
PROFILE_ENV = "PREFECT_PROFILE"
# What the plugin sets or unsets; restored afterwards.
MANAGED_VARIABLES = (HOME_ENV, PROFILES_PATH_ENV, PROFILE_ENV)
LEASE_PURPOSE = "prefect-home"
PROFILES_FILE = "profiles.toml"


@dataclass
class PrivateHome:
    """The session's private Prefect home, and the environment to restore."""

    path: Path
    saved: dict[str, str | None]
    lease: DirectoryLease | None  # None: a temporary directory (no usable lock directory)
    closed: bool = field(default=False)

    def close(self) -> None:
        """Restore the variables and remove the directory. Safe to call repeatedly."""
        if self.closed:
            return
        self.closed = True
        try:
            for name, value in self.saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        finally:
            if self.lease is not None:
                self.lease.release()
            else:
                shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True)
class HomeState:
    """Which Prefect home the session uses, for the header; ``private`` if the plugin made it."""

    description: str
    private: PrivateHome | None = None


home_key = pytest.StashKey[HomeState]()


def set_up_home(config: pytest.Config) -> HomeState:
    """Give the session a private Prefect home unless the user or the situation rules it out.

    Does nothing to the environment when Prefect is imported already (by a plugin loaded
    earlier, or by the code running pytest in-process): Prefect has read its home and
    profile by then, and changing the variables would only make later readers disagree
    with it. Nor when ``PREFECT_HOME`` or ``PREFECT_PROFILES_PATH`` is set (an xdist worker
    finds the controller's), or the ini option ``prefect_private_home`` is false.
    """
    enabled = private_home_enabled(config)  # validated even when it cannot matter
    if not enabled:
        state = HomeState(f"the user's (ini {PRIVATE_HOME_INI} = false)")
    elif "prefect" in sys.modules:
        state = HomeState("the user's (Prefect was imported before the plugin could set one)")
    elif HOME_ENV in os.environ:
        state = HomeState(f"{os.environ[HOME_ENV]} ({HOME_ENV} from the environment)")
    elif PROFILES_PATH_ENV in os.environ:
        state = HomeState(
            f"the user's, with profiles {os.environ[PROFILES_PATH_ENV]} "
            f"({PROFILES_PATH_ENV} from the environment)"
        )
    else:
        private = enter_private_home()
        config.add_cleanup(private.close)
        state = HomeState(f"{private.path} (private, removed after the session)", private)
    config.stash[home_key] = state
    return state


def enter_private_home() -> PrivateHome:
    """Make a private directory and point Prefect's home and profiles file into it."""
    path, lease = _private_directory()
    saved = {name: os.environ.get(name) for name in MANAGED_VARIABLES}
    os.environ[HOME_ENV] = str(path)
    os.environ[PROFILES_PATH_ENV] = str(path / PROFILES_FILE)
    os.environ.pop(PROFILE_ENV, None)
    return PrivateHome(path, saved, lease)


def _private_directory() -> tuple[Path, DirectoryLease | None]:
    try:
        lease = lease_directory(LEASE_PURPOSE)
    except AllocatorError:
        # The lock directory is unusable (the harness will say why if a test needs it); the
        # home must not stop a suite that starts no server.
        pass
    else:
        return lease.path, lease
    try:
        # mkdtemp creates it 0700.
        return Path(tempfile.mkdtemp(prefix="prefect-testkit-home-")), None
    except OSError as exc:
        raise pytest.UsageError(
            f"prefect-testkit could not create a private Prefect home ({exc}); set "
            f"{HOME_ENV} to a writable directory, or {PRIVATE_HOME_INI} = false in the ini "
            "file to use Prefect's default home"
        ) from None
