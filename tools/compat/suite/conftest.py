"""The conftest Prefect's testing docs recommend: one Prefect harness for the whole session.

The drop-in way (`-p compat.dropin`) swaps prefect_testkit's harness in from outside; the
plugin way runs with `--noconftest` and the plugin's `--prefect-harness-autouse` instead.
"""

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_test_fixture():
    # 120 s rather than the default 30: CI machines are slow to start Prefect's server.
    with prefect_test_harness(server_startup_timeout=120):
        yield
