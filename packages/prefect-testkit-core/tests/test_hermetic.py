"""Hermetic harnesses: a developer's settings, credentials and HTTP mocks stay outside.

Each case is a real developer setup against a real harness; a listener on the developer's
API port proves that nothing tried to reach it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import STARTUP_TIMEOUT, double_flow
from prefect import get_client
from prefect.client.cloud import get_cloud_client
from prefect.events.clients import PrefectEventsClient
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_testkit import HarnessConfigError, OtherAPIError, prefect_test_harness
from prefect_testkit._prefect import API_AUTH_SUPPORTED

DEVELOPER = Path(__file__).with_name("developer.py")


class Listener:
    """A developer's server: a port that records whether anything connected to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def connected(self) -> bool:
        # The kernel completes a connection in the backlog whether or not we accept it.
        try:
            connection, _ = self.socket.accept()
        except BlockingIOError:
            return False
        connection.close()
        return True


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.socket.close()


# Each a developer's setup that points Prefect at their own server with a credential.
SOURCES = ("environment", "profile", "home profile", "dotenv", "prefect.toml", "proxy")


def developer_setup(source: str, url: str, home: Path, cwd: Path) -> dict[str, str]:
    """Put ``source``'s settings in place; return the environment to run with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["HOME"] = str(home)
    api, key = f"{url}/api", "pnu_developer_key"
    profile = f'active = "cloud"\n[profiles.cloud]\nPREFECT_API_URL = "{api}"\n'
    profile += f'PREFECT_API_KEY = "{key}"\n'
    if source == "environment":
        env.update(PREFECT_API_URL=api, PREFECT_API_KEY=key)
    elif source == "profile":
        (cwd / "profiles.toml").write_text(profile)
        env["PREFECT_PROFILES_PATH"] = str(cwd / "profiles.toml")
    elif source == "home profile":
        (home / ".prefect").mkdir()
        (home / ".prefect" / "profiles.toml").write_text(profile)
    elif source == "dotenv":
        (cwd / ".env").write_text(f"PREFECT_API_URL={api}\nPREFECT_API_KEY={key}\n")
    elif source == "prefect.toml":
        (cwd / "prefect.toml").write_text(f'[api]\nurl = "{api}"\nkey = "{key}"\n')
    else:  # a proxy for every request; Prefect's own settings untouched
        env.update(HTTP_PROXY=url, http_proxy=url, ALL_PROXY=url)
    return env


@pytest.mark.parametrize("source", SOURCES)
def test_a_developers_settings_stay_outside_the_harness(
    source: str, listener: Listener, tmp_path: Path
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    cwd.mkdir()
    env = developer_setup(source, listener.url, home, cwd)
    done = subprocess.run(
        [sys.executable, str(DEVELOPER)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])

    harness = seen["inside"]["harness"]
    assert seen["inside"] == {
        "url": harness,
        "key": False,
        "environment_key": "",  # blank: it beats a profile, .env or prefect.toml in a child
        "harness": harness,
    }
    assert seen["child"] == {"url": harness, "key": False}
    assert "from-a-child" in seen["cli"]
    assert seen["runs"] == ["from-a-child", "from-the-test"]
    assert seen["after"] == seen["before"]
    assert seen["environment_restored"]
    assert not listener.connected(), f"something reached the developer's {listener.url}"


def test_a_client_for_another_api_is_refused_and_recorded(listener: Listener) -> None:
    other = f"{listener.url}/api"
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        with temporary_settings({PREFECT_API_URL: other}), pytest.raises(OtherAPIError) as refused:
            get_client(sync_client=True)
        assert refused.value.url == other
        assert refused.value.harness_url == harness.api_url
        assert other in str(refused.value)
        assert harness.api_url in str(refused.value)
        assert "PREFECT_TESTKIT_ALLOW_OTHER_APIS" in str(refused.value)
        with pytest.raises(OtherAPIError):
            PrefectEventsClient(api_url=other)  # websockets: events
        with pytest.raises(OtherAPIError):
            get_cloud_client(host=other, api_key="pnu_developer_key")
        assert harness.refused_api_urls == (other, other, other)
        # An in-process app reaches no other server: allowed.
        from prefect.client.base import PrefectHttpxAsyncClient

        PrefectHttpxAsyncClient(
            base_url="http://ephemeral-prefect/api", transport=httpx.ASGITransport(app=_app)
        )
        assert double_flow(2) == 4
    assert not listener.connected()


async def _app(scope: object, receive: object, send: object) -> None:  # never called
    raise AssertionError


def test_other_apis_are_allowed_when_asked(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_ALLOW_OTHER_APIS", "true")
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        with temporary_settings({PREFECT_API_URL: f"{listener.url}/api"}):
            client = get_client(sync_client=True)
        client._client.close()
        assert harness.refused_api_urls == ()


def test_nested_harnesses_restore_the_outer_ones_environment() -> None:
    before = dict(os.environ)
    with prefect_test_harness(STARTUP_TIMEOUT) as outer:
        exported = {
            name: os.environ.get(name)
            for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_HOME")
        }
        assert exported["PREFECT_API_URL"] == outer.api_url
        assert exported["PREFECT_HOME"] == str(outer.home)
        if API_AUTH_SUPPORTED:
            assert exported["PREFECT_API_AUTH_STRING"] == outer.api_auth_string
        with prefect_test_harness(STARTUP_TIMEOUT) as inner:
            assert os.environ["PREFECT_API_URL"] == inner.api_url
            assert double_flow(1) == 2
        assert {name: os.environ.get(name) for name in exported} == exported
        assert double_flow(2) == 4
    assert dict(os.environ) == before


MOCK_STARTED_FIRST = """
import respx
respx.mock.start()  # before the toolkit is imported: the route cannot be kept
from prefect_testkit import prefect_test_harness, HarnessConfigError
try:
    with prefect_test_harness():
        pass
except HarnessConfigError as exc:
    print(exc)
"""


def test_a_mock_started_before_the_toolkit_is_named() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MOCK_STARTED_FIRST],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "respx" in done.stdout or "already replaced" in done.stdout, done.stdout
    assert "PREFECT_TESTKIT_HIDE_FROM_HTTP_MOCKS=false" in done.stdout
    assert issubclass(HarnessConfigError, ValueError)
