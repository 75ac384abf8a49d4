"""Run one harness and a flow in whatever interpreter runs this script, and print, as JSON,
what the factory tests compare: how the server started and which factory forked it.

A script rather than ``-c`` so that its directory, and with it ``conftest``, is importable
from any working directory.
"""

from __future__ import annotations

import json
import sys

import psutil
from conftest import STARTUP_TIMEOUT, double_flow

from prefect_testkit import prefect_test_harness

with prefect_test_harness(STARTUP_TIMEOUT) as harness:
    assert double_flow(21) == 42
    factory = psutil.Process(harness.server_pid).ppid() if harness.server_forked else None
    print(json.dumps({"forked": harness.server_forked, "factory": factory, "prefix": sys.prefix}))
