"""The conftest Prefect's testing docs recommend, with only the import swapped.

It also records which server and database each worker used, so that the tests
around this suite can check that no two harnesses shared one.
"""

import json
import os

import pytest

from prefect_testkit import prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_test_fixture():
    with prefect_test_harness(server_startup_timeout=120) as harness:
        record = {
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "port": harness.port,
            "database": str(harness.database_file),
        }
        print(f"harness {record}")
        with open(os.environ["SEED_SUITE_RECORD"], "a") as out:
            out.write(json.dumps(record) + "\n")
        yield
