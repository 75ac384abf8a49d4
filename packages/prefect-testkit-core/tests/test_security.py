"""Nobody else gets in: an authenticated API, a secret kept off command lines, private files."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import STARTUP_TIMEOUT, auth_headers, double_flow

from prefect_testkit import prefect_test_harness
from prefect_testkit._prefect import API_AUTH_SUPPORTED


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(API_AUTH_SUPPORTED, reason="this Prefect has an API auth string")
def test_without_prefects_auth_setting_the_api_is_open() -> None:
    """Prefect 3.0 has no PREFECT_API_AUTH_STRING: the harness's auth is off (README)."""
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert double_flow(2) == 4
        assert harness.api_auth_string is None
        assert httpx.post(f"{harness.api_url}/flows/filter", timeout=10).status_code == 200


@pytest.mark.skipif(not API_AUTH_SUPPORTED, reason="Prefect 3.0 has no API auth string")
@pytest.mark.parametrize("factory", ["true", "false"])
def test_the_api_needs_the_harness_credential_which_stays_private(
    factory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_SERVER_FACTORY", factory)
    with prefect_test_harness(STARTUP_TIMEOUT) as harness:
        assert double_flow(2) == 4  # Prefect's own client is given the credential
        secret = harness.api_auth_string
        assert secret
        assert secret not in repr(harness)

        flows = f"{harness.api_url}/flows/filter"
        assert httpx.post(flows, timeout=10).status_code == 401
        assert (
            httpx.post(flows, headers={"Authorization": "Basic eDp5"}, timeout=10).status_code
            == 401
        )
        assert httpx.post(flows, headers=auth_headers(harness), timeout=10).status_code == 200

        server = psutil.Process(harness.server_pid)
        processes = [server, *([server.parent()] if harness.server_forked else [])]
        for process in processes:
            assert process is not None
            assert secret not in " ".join(process.cmdline())
        assert secret not in harness.log_path.read_text()

        listening = [c.laddr for c in server.net_connections() if c.status == psutil.CONN_LISTEN]
        assert [address.ip for address in listening] == ["127.0.0.1"]

        assert mode(harness.directory) == 0o700
        assert mode(harness.home) == 0o700
        for file in (harness.database_file, harness.log_path):
            assert mode(file) == 0o600, file
