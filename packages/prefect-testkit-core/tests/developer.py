"""A developer's machine, seen from a harness: run by test_hermetic.py in a fresh interpreter.

The developer's Prefect settings (an API URL and key in the environment, a profile, a
``.env`` or a ``prefect.toml`` in the working directory, a proxy) are in place before
Prefect is imported, as in a real session. Prints, as JSON, what this process, a child
process and the ``prefect`` CLI saw inside a harness, and what was left after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import prefect.settings
from prefect import flow, get_client
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_testkit import prefect_test_harness

CHILD = """
import json, prefect.settings
from prefect import flow

@flow(name="from-a-child")
def child():
    return 1

child()
settings = prefect.settings.get_current_settings()
key = settings.api.key.get_secret_value() if settings.api.key else ""
print(json.dumps({"url": settings.api.url, "key": key != ""}))
"""


@flow(name="from-the-test")
def parent() -> int:
    return 1


def settings_seen() -> dict[str, object]:
    settings = prefect.settings.get_current_settings()
    return {
        "url": settings.api.url,
        "key": bool(settings.api.key and settings.api.key.get_secret_value()),
        "environment_key": os.environ.get("PREFECT_API_KEY"),
    }


def run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done.stdout


async def flows_that_ran() -> list[str]:
    async with get_client() as client:  # 3.0's sync client cannot read flows
        runs = await client.read_flow_runs()
        return sorted([(await client.read_flow(run.flow_id)).name for run in runs])


def main() -> None:
    os.environ["COLUMNS"] = "300"  # the CLI's table, untruncated
    environment_before, seen = dict(os.environ), {"before": settings_seen()}
    with prefect_test_harness(server_startup_timeout=120) as harness:
        seen["inside"] = {**settings_seen(), "harness": harness.api_url}
        parent()
        seen["child"] = json.loads(run(sys.executable, "-c", CHILD).splitlines()[-1])
        # The console script beside this interpreter (3.0 has no `python -m prefect`).
        seen["cli"] = run(str(Path(sys.executable).with_name("prefect")), "flow-run", "ls")
        seen["runs"] = run_coro_as_sync(flows_that_ran())
    seen["after"] = settings_seen()
    seen["environment_restored"] = dict(os.environ) == environment_before
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
