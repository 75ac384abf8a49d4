"""Ctrl-C (SIGINT) during startup, during a test and during teardown leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import wait_until_gone

from prefect_testkit_xdist import list_leases

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import prefect_testkit._launch.process as process
    from prefect_testkit import prefect_test_harness

    # Announce the server as soon as it is launched, before it is healthy.
    launched = process.ServerProcess.__init__
    def announce(self, *args, **kwargs):
        launched(self, *args, **kwargs)
        print("launched", self.pid, self.log_path.parent, flush=True)
    process.ServerProcess.__init__ = announce

    with prefect_test_harness(120):
        print("inside", flush=True)
        time.sleep(600)
    """
)


def interrupt(phase: str) -> tuple[int, int, Path, int]:
    """SIGINT a harness in a child Python during `phase`; return its pid, server pid, dir, code."""
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        assert child.stdout is not None
        try:
            _, pid, directory = child.stdout.readline().split()
            if phase == "startup":
                os.kill(child.pid, signal.SIGINT)
            else:
                assert child.stdout.readline().strip() == "inside"
                os.kill(child.pid, signal.SIGINT)
                if phase == "teardown":
                    time.sleep(0.05)  # teardown has begun: interrupt it too
                    os.kill(child.pid, signal.SIGINT)
            code = child.wait(timeout=60)
        finally:
            child.kill()
    return child.pid, int(pid), Path(directory), code


@pytest.mark.parametrize("phase", ["startup", "test", "teardown"])
def test_ctrl_c_leaves_no_server_lease_or_directory(phase: str) -> None:
    harness_pid, server_pid, directory, code = interrupt(phase)
    assert code != 0
    assert wait_until_gone(server_pid, within=10), f"server outlived Ctrl-C during {phase}"
    assert not directory.exists(), f"harness directory left after Ctrl-C during {phase}"
    assert all(lease.pid != harness_pid for lease in list_leases())
