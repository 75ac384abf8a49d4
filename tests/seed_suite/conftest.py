"""The conftest Prefect's testing docs recommend, with only the import swapped.

It also records which server and database each worker used, so that the tests
around this suite can check that no two harnesses shared one.
"""

import json
import os

import prefect.settings
import pytest
from sqlalchemy.engine import make_url

from prefect_testkit import prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_test_fixture():
    with prefect_test_harness(server_startup_timeout=120) as harness:
        # What any Prefect code sees: the settings, not the harness's handle.
        database = make_url(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
        record = {
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "port": harness.port,
            "database_server": f"{database.host}:{database.port}",
            "database": database.database,
        }
        print(f"harness {record}")
        with open(os.environ["SEED_SUITE_RECORD"], "a") as out:
            out.write(json.dumps(record) + "\n")
        yield
