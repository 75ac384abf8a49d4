"""Flows checked through their final state and through the API the harness serves."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow, task
from prefect.client.orchestration import SyncPrefectClient


@task
def count_words(text: str) -> int:
    return len(text.split())


@task(retries=1, retry_delay_seconds=0)
def flaky_upper(text: str, attempts: list[int]) -> str:
    attempts.append(1)
    if len(attempts) == 1:
        raise RuntimeError("first attempt fails on purpose")
    return text.upper()


@flow
def word_report(text: str) -> dict[str, object]:
    return {"words": count_words(text), "title": flaky_upper(text, [])}


@flow
def failing_report() -> None:
    raise ValueError("no data")


@task
async def count_words_async(text: str) -> int:
    await asyncio.sleep(0)
    return len(text.split())


@flow
async def async_report(texts: list[str]) -> int:
    counts = await asyncio.gather(*(count_words_async(text) for text in texts))
    return sum(counts)


def test_report_with_retry() -> None:
    assert word_report("storm over the plain") == {"words": 4, "title": "STORM OVER THE PLAIN"}


def test_failed_flow_is_recorded(sync_prefect_client: SyncPrefectClient) -> None:
    state = failing_report(return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match="no data"):
        state.result()
    stored = sync_prefect_client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None
    assert stored.state.is_failed()


def test_async_flow() -> None:
    assert asyncio.run(async_report(["a b", "c d e"])) == 5
