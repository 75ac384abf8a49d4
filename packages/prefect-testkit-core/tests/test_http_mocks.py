"""HTTP-mocking libraries, used as their documentation shows, beside a harness (the drop-in).

The harness's own traffic never reaches them; for every other URL they behave as always:
an unmocked host still fails, an unrequested mock still fails at teardown, a cassette
records and replays only the test's own calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import respx
import vcr
import yaml
from conftest import STARTUP_TIMEOUT, tolerates_prefect_async_flow_socket_leak
from prefect import flow, task
from pytest_httpx import HTTPXMock
from vcr.errors import CannotOverwriteExistingCassetteException

from prefect_testkit import HarnessHandle, prefect_test_harness

EXTERNAL = "https://api.example.com"

pytestmark = tolerates_prefect_async_flow_socket_leak


@task
def fetch(path: str) -> object:
    return httpx.get(f"{EXTERNAL}{path}").json()


@task
async def afetch(path: str) -> object:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{EXTERNAL}{path}")).json()


@flow
def sync_flow(path: str) -> object:
    return fetch(path)


@flow
async def async_flow(path: str) -> object:
    return await afetch(path)


@pytest.fixture(scope="module", autouse=True)
def harness() -> Iterator[HarnessHandle]:
    with prefect_test_harness(STARTUP_TIMEOUT) as handle:
        yield handle


def test_respx_context_manager_with_a_base_url() -> None:
    with respx.mock(base_url=EXTERNAL, assert_all_called=False) as mock:
        mock.get("/users").respond(json=["ada"])
        mock.get("/never").respond(204)
        assert sync_flow("/users") == ["ada"]


@respx.mock
def test_respx_decorator() -> None:
    respx.get(f"{EXTERNAL}/users").respond(json=["grace"])
    assert sync_flow("/users") == ["grace"]


def test_respx_global_mock_still_refuses_unmocked_hosts() -> None:
    respx.mock.start()
    try:
        respx.get(f"{EXTERNAL}/users").respond(json=[])
        assert sync_flow("/users") == []
        with pytest.raises(respx.models.AllMockedAssertionError):
            httpx.get("https://unmocked.example.com/")
    finally:
        respx.mock.stop()
        respx.mock.clear()


def test_respx_assert_all_called_still_fails_for_the_users_routes() -> None:
    mock = respx.mock(assert_all_called=True)
    with pytest.raises(AssertionError, match="not called"), mock:  # noqa: PT012
        mock.get(f"{EXTERNAL}/users").respond(json=[])
        mock.get(f"{EXTERNAL}/unused").respond(json=[])
        assert sync_flow("/users") == []


def test_respx_on_httpx_transports_lookup() -> None:
    with respx.mock(using="httpx") as mock:
        mock.get(f"{EXTERNAL}/users").respond(json=["linus"])
        assert sync_flow("/users") == ["linus"]


@pytest.mark.asyncio
async def test_respx_fixture_with_an_async_flow(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{EXTERNAL}/users").respond(json=["barbara"])
    assert await async_flow("/users") == ["barbara"]


@pytest.mark.respx(assert_all_called=True)
def test_respx_carve_outs_written_for_prefects_harness_still_pass(
    respx_mock: respx.MockRouter,
) -> None:
    """As in Prefect's own integration suites (prefect-databricks): the carve-out route must
    be called, or respx fails the test."""
    carve_out = respx_mock.route(host="127.0.0.1").pass_through()
    respx_mock.get(f"{EXTERNAL}/users").respond(json=["margaret"])
    assert sync_flow("/users") == ["margaret"]
    assert carve_out.called


def test_pytest_httpx_with_a_sync_flow(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{EXTERNAL}/users", json=["ken"])
    assert sync_flow("/users") == ["ken"]
    assert [str(request.url) for request in httpx_mock.get_requests()] == [f"{EXTERNAL}/users"]


@pytest.mark.asyncio
async def test_pytest_httpx_with_an_async_flow(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{EXTERNAL}/users", json=["dennis"])
    assert await async_flow("/users") == ["dennis"]


def test_pytest_httpx_still_refuses_unexpected_requests(httpx_mock: HTTPXMock) -> None:
    with pytest.raises(httpx.TimeoutException, match=r"unmocked\.example\.com"):
        httpx.get("https://unmocked.example.com/")
    httpx_mock.reset()  # the library's teardown would otherwise report the request


@pytest.fixture
def local_api() -> Iterator[str]:
    """An external API for VCR.py to record: a real HTTP server on loopback."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'["recorded"]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@task
def fetch_url(url: str) -> object:
    return httpx.get(url).json()


@flow
def fetch_flow(url: str) -> object:
    return fetch_url(url)


def test_vcr_records_and_replays_only_the_tests_own_calls(local_api: str, tmp_path: Path) -> None:
    cassette = tmp_path / "users.yaml"
    with vcr.use_cassette(str(cassette), record_mode="once"):
        assert fetch_flow(f"{local_api}/users") == ["recorded"]
    recorded = yaml.safe_load(cassette.read_text())["interactions"]
    assert [i["request"]["uri"] for i in recorded] == [f"{local_api}/users"]

    with vcr.use_cassette(str(cassette), record_mode="none") as played:
        assert fetch_flow(f"{local_api}/users") == ["recorded"]
        assert played.play_count == 1
        with pytest.raises(CannotOverwriteExistingCassetteException):
            httpx.get(f"{local_api}/not-recorded")
