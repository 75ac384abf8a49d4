"""What the flows left on the server: runs, task runs, logs, variables, artifacts and tags."""

import asyncio
import logging
import time
import uuid

import pytest
from prefect import flow, get_client, get_run_logger, tags, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.variables import Variable


@task
def shout(text: str) -> str:
    return text.upper()


def unique(prefix: str) -> str:
    """Names that no other test uses: the harness's database lasts the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_caplog_sees_the_flow_run_logger(caplog):
    caplog.set_level(logging.INFO)

    @flow
    def greeter(name: str) -> None:
        get_run_logger().info("hello %s", name)

    greeter("compat")

    assert "hello compat" in caplog.text


@pytest.mark.asyncio
async def test_client_reads_the_flow_run_and_its_parameters():
    @flow
    def report(region: str) -> str:
        return shout(region)

    state = report("emea", return_state=True)
    run_id = state.state_details.flow_run_id

    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )

    assert run.parameters == {"region": "emea"}
    assert run.state is not None
    assert run.state.is_completed()
    assert [r.id for r in runs] == [run_id]


def test_sync_client_reads_task_runs_of_a_flow_run():
    @flow
    def batch() -> list[str]:
        return [shout("a"), shout("b"), shout("c")]

    state = batch(return_state=True)
    run_id = state.state_details.flow_run_id

    # Task runs reach the database asynchronously on some Prefect releases: poll.
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            )
            done = [t for t in task_runs if t.state is not None and t.state.is_completed()]
            if len(done) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)

    assert len(done) == 3
    assert all(t.name.startswith("shout") for t in done)


def test_variables_set_and_read_in_a_flow():
    name = unique("threshold").replace("-", "_")
    Variable.set(name, {"limit": 7}, overwrite=True)

    @flow
    def uses_variable() -> int:
        return Variable.get(name)["limit"] * 2

    assert uses_variable() == 14
    assert Variable.get(name) == {"limit": 7}
    assert Variable.get(unique("missing").replace("-", "_"), default="none") == "none"


def test_artifact_and_tags_recorded_for_the_run():
    key = unique("summary")

    @flow(name=unique("nightly"))
    def nightly() -> None:
        create_markdown_artifact(key=key, markdown="# 3 rows loaded")

    with tags("compat", "nightly"):
        state = nightly(return_state=True)
    run_id = state.state_details.flow_run_id

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
            return run, artifacts

    run, artifacts = asyncio.run(read())
    assert {"compat", "nightly"} <= set(run.tags)
    assert [a.data for a in artifacts] == ["# 3 rows loaded"]
    assert artifacts[0].flow_run_id == run_id
