"""Hermetic by default: HTTP-mocking libraries (respx, pytest-httpx, VCR.py) never see the
harness's traffic and keep their own behaviour for the user's calls, and a Prefect client
refused for another API fails the test even where the error was swallowed.

One subprocess run holds every case (each run starts a server), in a fresh user home.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
from conftest import FLOWS, STARTUP, assert_removed, connections, private_home, pyproject

HTTP_FLOWS = FLOWS + textwrap.dedent(
    """
    import httpx

    API = "https://api.example.com"
    ITEMS = API + "/items"


    @task
    def get_n(url: str) -> int:
        return httpx.get(url, timeout=10).json()["n"]


    @flow
    def fetch(url: str = ITEMS) -> int:
        return get_n(url) + double(0)


    @task
    async def aget_n(url: str) -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(url)).json()["n"]


    @flow
    async def afetch(url: str = ITEMS) -> int:
        return await aget_n(url)
    """
)

MOCKS_CONFTEST = """
import http.server
import json
import threading

import pytest


class Items(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"n": 10}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Items)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
"""

RESPX_TESTS = """
import httpx
import pytest
import respx
from respx.models import AllMockedAssertionError

from flows import API, ITEMS, afetch, fetch


def test_context_manager_with_base_url(sync_prefect_client):
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        items = mock.get("/items").respond(json={"n": 3})
        mock.get("/unused").respond(json={"n": 0})
        assert fetch() == 3
        # The harness's own calls went round the mock: only the user's reached it.
        assert items.call_count == 1 and mock.calls.call_count == 1
        assert len(sync_prefect_client.read_flow_runs()) >= 1
        with pytest.raises(AllMockedAssertionError, match="other.example.com"):
            httpx.get("https://other.example.com/")


def test_global_mock_started_and_stopped():
    respx.start()
    try:
        route = respx.get(ITEMS).respond(json={"n": 4})
        assert fetch() == 4
        assert route.call_count == 1 and respx.calls.call_count == 1
    finally:
        respx.stop()


@pytest.mark.asyncio
async def test_fixture_with_an_async_flow(respx_mock):
    respx_mock.get(ITEMS).respond(json={"n": 5})
    assert await afetch() == 5
    assert respx_mock.calls.call_count == 1


@respx.mock
def test_decorator():
    route = respx.get(ITEMS).respond(json={"n": 6})
    assert fetch() == 6
    assert route.call_count == 1 and respx.calls.call_count == 1


@respx.mock(assert_all_called=True)
def test_an_uncalled_route_still_fails(respx_mock):
    respx_mock.get(ITEMS).respond(json={"n": 1})
    respx_mock.get(API + "/never").respond(json={"n": 0})
    assert fetch() == 1
"""

HTTPX_MOCK_TESTS = """
import httpx
import pytest

from flows import ITEMS, afetch, fetch, make


def test_sync_flow(httpx_mock, sync_prefect_client):
    httpx_mock.add_response(url=ITEMS, json={"n": 7})
    assert fetch() == 7
    assert [str(request.url) for request in httpx_mock.get_requests()] == [ITEMS]
    assert len(sync_prefect_client.read_flow_runs()) >= 1


@pytest.mark.asyncio
async def test_async_flow(httpx_mock):
    httpx_mock.add_response(url=ITEMS, json={"n": 8})
    assert await afetch() == 8
    assert [str(request.url) for request in httpx_mock.get_requests()] == [ITEMS]


def test_an_unrequested_response_still_fails_at_teardown(httpx_mock):
    httpx_mock.add_response(url="https://api.example.com/never-requested")
    assert make(1) == 2


@pytest.mark.httpx_mock(assert_all_requests_were_expected=False)
def test_a_request_nothing_mocks_still_fails(httpx_mock):
    assert make(2) == 4
    with pytest.raises(httpx.TimeoutException, match="No response can be found"):
        httpx.get("https://other.example.com/")
"""

VCR_TESTS = """
import httpx
import pytest
import vcr
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException

from flows import ITEMS, afetch, fetch

CASSETTE = '''
interactions:
- request:
    body: null
    headers: {}
    method: GET
    uri: https://api.example.com/items
  response:
    body: {string: '{"n": 9}'}
    headers:
      content-type: [application/json]
    status: {code: 200, message: OK}
version: 1
'''


def test_playback_around_a_flow(tmp_path):
    path = tmp_path / "items.yaml"
    path.write_text(CASSETTE)
    with vcr.use_cassette(str(path), record_mode="none") as cassette:
        assert fetch() == 9
        assert cassette.play_count == 1
        with pytest.raises(CannotOverwriteExistingCassetteException):
            httpx.get("https://other.example.com/")


@pytest.mark.asyncio
async def test_recording_keeps_only_the_users_calls(tmp_path, local_server):
    path = tmp_path / "recorded.yaml"
    with vcr.use_cassette(str(path), record_mode="once"):
        assert await afetch(local_server + "/items") == 10
        assert fetch(local_server + "/items") == 10
    interactions = yaml.safe_load(path.read_text())["interactions"]
    assert [i["request"]["uri"] for i in interactions] == [local_server + "/items"] * 2
"""

ESCAPE_TESTS = """
import os

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import make

OTHER = os.environ["OTHER_API"]


def swallowed_client(url=OTHER):
    with temporary_settings({PREFECT_API_URL: url}):
        try:
            get_client(sync_client=True)
        except Exception:
            pass


def test_a_swallowed_refusal_fails_the_test(prefect_harness):
    make(1)
    swallowed_client()


@pytest.fixture
def refuses_at_teardown(prefect_harness):
    yield
    swallowed_client(OTHER + "/teardown")


def test_a_refusal_in_a_fixture_errors_it(refuses_at_teardown):
    pass


def test_a_failing_test_keeps_its_error_and_gains_the_url(prefect_harness):
    swallowed_client(OTHER + "/failing")
    assert make(3) == 5, "its own failure"


def test_the_next_test_is_not_blamed(prefect_harness):
    assert make(2) == 4
"""


def test_mocking_libraries_and_the_escape_guard_in_a_fresh_home(
    pytester: pytest.Pytester,
    user_home: Path,
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pyproject(pytester)
    pytester.makeconftest(MOCKS_CONFTEST)
    pytester.makepyfile(
        flows=HTTP_FLOWS,
        test_respx=RESPX_TESTS,
        test_httpx_mock=HTTPX_MOCK_TESTS,
        test_vcr=VCR_TESTS,
        test_escape=ESCAPE_TESTS,
    )
    pytester.syspathinsert()
    other = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    monkeypatch.setenv("OTHER_API", other)
    result = pytester.runpytest_subprocess(STARTUP, "-p", "no:randomly", timeout=600)
    result.assert_outcomes(passed=12, failed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            # pytest-httpx and respx still check the user's own mocks.
            "*_ ERROR at teardown of test_an_unrequested_response_still_fails_at_teardown _*",
            "*The following responses are mocked but not requested*",
            "*_ test_an_uncalled_route_still_fails _*",
            "E * RESPX: some routes were not called!",
        ]
    )
    # The escape guard: a refusal in a fixture's teardown errors that test; the test whose
    # code swallowed the refusal fails with the URL and the opt-out; the next is clean.
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a_refusal_in_a_fixture_errors_it _*",
            "prefect-testkit: during this test's teardown, 1 Prefect client was refused for an "
            "API other than the harness's *",
            f"    {other}/teardown",
            "*_ test_a_swallowed_refusal_fails_the_test _*",
            "prefect-testkit: during this test, 1 Prefect client was refused for an API other "
            "than the harness's *",
            f"    {other}",
            f"A Prefect client was created for {other} while the harness serves "
            "http://127.0.0.1:*/api: *PREFECT_TESTKIT_ALLOW_OTHER_APIS=true to allow other APIs.",
            # A test that fails anyway keeps its own error; the URLs come as a section.
            "*_ test_a_failing_test_keeps_its_error_and_gains_the_url _*",
            "E * AssertionError: its own failure",
            "*- prefect-testkit: Prefect clients refused for other APIs -*",
            "prefect-testkit: during this test, 1 Prefect client was refused *",
            f"    {other}/failing",
        ]
    )
    outcomes = {
        line.split(" ", 1)[1].split(" - ")[0]
        for line in result.outlines
        if line.startswith(("FAILED ", "ERROR "))
    }
    assert outcomes == {
        "test_respx.py::test_an_uncalled_route_still_fails",
        "test_httpx_mock.py::test_an_unrequested_response_still_fails_at_teardown",
        "test_escape.py::test_a_swallowed_refusal_fails_the_test",
        "test_escape.py::test_a_failing_test_keeps_its_error_and_gains_the_url",
        "test_escape.py::test_a_refusal_in_a_fixture_errors_it",
    }
    assert connections(listener) == 0
    # A fresh home stays empty: no ~/.prefect; the private home is gone with its lease.
    assert list(user_home.iterdir()) == []
    assert_removed(private_home(result.stdout.str()))
