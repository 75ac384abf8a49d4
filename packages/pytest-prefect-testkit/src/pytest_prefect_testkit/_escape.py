"""Failing a test in which a Prefect client was refused for an API other than the harness's.

While the session harness is active, core refuses a Prefect client for any other API with
`prefect_testkit.OtherAPIError`, and records the URL (``HarnessHandle.refused_api_urls``).
The error reaches the test when its own code made the client; Prefect's background workers
(the log and event workers) swallow it, so the test would pass although something in it
tried to reach Prefect Cloud or a developer's server. The plugin compares the record before
and after each phase of a test (setup, call, teardown) and fails the phase in which it grew,
naming the URLs: a refusal in the test body fails the test, one in a fixture errors it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_prefect_testkit._session import get_manager

if TYPE_CHECKING:
    from pytest_prefect_testkit._session import Refusal

SECTION_TITLE = "prefect-testkit: Prefect clients refused for other APIs"

_seen_key = pytest.StashKey[int]()


def start_watching(item: pytest.Item) -> None:
    """Remember how many refusals there were when ``item`` starts."""
    item.stash[_seen_key] = len(get_manager(item.config).refusals())


def check_phase(item: pytest.Item, report: pytest.TestReport) -> None:
    """Fail ``report`` (one phase of ``item``) if clients were refused during that phase.

    A report that failed already keeps its own error and gains a section with the URLs;
    a skipped one (``pytest.skip``, an expected failure) is left as it is.
    """
    seen = item.stash.get(_seen_key, None)
    if seen is None:
        return
    refusals = get_manager(item.config).refusals()
    item.stash[_seen_key] = len(refusals)
    new = refusals[seen:]
    if not new:
        return
    message = refusal_message(new, report.when)
    if report.passed:
        report.outcome = "failed"
        report.longrepr = message
    elif report.failed:
        report.sections.append((SECTION_TITLE, message))


PHASES = {"setup": "test's setup", "call": "test", "teardown": "test's teardown"}


def refusal_message(refusals: tuple[Refusal, ...], when: str | None) -> str:
    from prefect_testkit import OtherAPIError

    urls = list(dict.fromkeys(refusal.url for refusal in refusals))
    count = len(refusals)
    lines = [
        f"prefect-testkit: during this {PHASES.get(when or '', 'test')}, {count} Prefect "
        f"client{'s were' if count > 1 else ' was'} refused for "
        f"{'APIs' if len(urls) > 1 else 'an API'} other than the harness's (OtherAPIError, "
        "which code that catches it, and Prefect's background log and event workers, hide "
        "from the test):",
        *(f"    {url}" for url in urls),
        str(OtherAPIError(refusals[0].url, refusals[0].harness_url)),
    ]
    return "\n".join(lines)
