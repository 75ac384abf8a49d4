"""The session's private Prefect home: ~/.prefect is neither created nor read.

Runs are subprocesses: the home must be set before Prefect is first imported, and this
process imported it long ago (and has its own session's private home in PREFECT_HOME,
which the `user_home` fixture removes from the inner runs' environment).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from conftest import FLOWS, STARTUP, assert_removed, connections, private_home, pyproject

from prefect_testkit_xdist import list_leases, lock_dir
from pytest_prefect_testkit._home import MANAGED_VARIABLES, enter_private_home

# Read at collection, before any harness (which points PREFECT_HOME at its own home while
# it runs), and written where the outer test can read it.
SEEN = """
import json
import os
from pathlib import Path

import prefect.context
import prefect.settings

SEEN = {
    "environ": {name: os.environ.get(name) for name in ("PREFECT_HOME", "PREFECT_PROFILES_PATH",
                                                        "PREFECT_PROFILE")},
    "home": str(prefect.settings.PREFECT_HOME.value()),
    "profiles_path": str(prefect.settings.PREFECT_PROFILES_PATH.value()),
    "profile": prefect.context.get_settings_context().profile.name,
    "api_url": prefect.settings.PREFECT_API_URL.value(),
    "api_key": str(prefect.settings.PREFECT_API_KEY.value()),
}


def record(name, **extra):
    Path(os.environ["SEEN_DIR"], f"{name}.json").write_text(json.dumps({**SEEN, **extra}))
"""


def seen(directory: Path, name: str) -> dict[str, object]:
    result: dict[str, object] = json.loads((directory / f"{name}.json").read_text())
    return result


@pytest.fixture
def seen_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "seen"
    directory.mkdir()
    monkeypatch.setenv("SEEN_DIR", str(directory))
    return directory


CLOUD_PROFILE = """
active = "cloud"

[profiles.cloud]
PREFECT_API_URL = "{url}"
PREFECT_API_KEY = "pnu_fake"
"""


def test_a_cloud_profile_in_the_users_home_is_not_read(
    pytester: pytest.Pytester,
    user_home: Path,
    listener: socket.socket,
    seen_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the opt-out, only the private home keeps the tests away from the profile's API;
    # and a client built for another API fails no test.
    monkeypatch.setenv("PREFECT_TESTKIT_ALLOW_OTHER_APIS", "true")
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    prefect_dir = user_home / ".prefect"
    prefect_dir.mkdir()
    profiles = CLOUD_PROFILE.format(url=url)
    (prefect_dir / "profiles.toml").write_text(profiles)
    pyproject(pytester)
    pytester.makepyfile(
        flows=FLOWS + SEEN,
        test_cloud="""
            import prefect.settings
            from prefect import get_client
            from prefect.settings import PREFECT_API_URL, temporary_settings
            from flows import make, record

            # Before any harness: what code at import time, or a test without the
            # harness, would use.
            record("collection")

            def test_flows_run_without_the_key(prefect_harness):
                assert make(1) == 2
                assert prefect.settings.PREFECT_API_KEY.value() is None
                with get_client(sync_client=True) as client:
                    assert len(client.read_flow_runs()) == 1

            def test_the_opt_out_lets_a_client_for_another_api_be_built(prefect_harness):
                with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
                    get_client(sync_client=True)  # built, never used: no connection
                assert prefect_harness.refused_api_urls == ()
            """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(STARTUP, timeout=600)
    result.assert_outcomes(passed=2)
    home = private_home(result.stdout.str())
    found = seen(seen_dir, "collection")
    assert found["home"] == str(home)
    assert found["profile"] != "cloud"
    assert (found["api_url"], found["api_key"]) == (None, "None")
    assert connections(listener) == 0
    # The user's Prefect home is as it was: nothing written, nothing added.
    assert [path.name for path in prefect_dir.iterdir()] == ["profiles.toml"]
    assert (prefect_dir / "profiles.toml").read_text() == profiles
    assert_removed(home)


def test_an_unwritable_home_under_xdist(
    pytester: pytest.Pytester,
    user_home: Path,
    seen_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Root may write anywhere, but nobody can create a directory under a regular file.
    blocker = user_home / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    pyproject(pytester, "prefect_harness_autouse = true")
    worker_test = """
        import os
        from flows import make, record
        from pytest_prefect_testkit._home import home_key

        def test_{n}(request):
            assert make({n}) == 2 * {n}
            # A worker uses the controller's home and does not own it.
            assert request.config.stash[home_key].private is None
            record("{n}", worker=os.environ["PYTEST_XDIST_WORKER"])
        """
    pytester.makepyfile(
        flows=FLOWS + SEEN,
        test_a=worker_test.format(n=1),
        test_b=worker_test.format(n=2),
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", STARTUP, "-p", "no:randomly", timeout=600
    )
    result.assert_outcomes(passed=2)
    home = private_home(result.stdout.str())
    for name in ("1", "2"):
        found = seen(seen_dir, name)
        assert found["environ"] == {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            "PREFECT_PROFILE": None,
        }
    assert_removed(home)


def test_a_fresh_home_stays_empty(
    pytester: pytest.Pytester,
    user_home: Path,
    seen_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A profile named in the environment belongs to the user's profiles file: unset too.
    monkeypatch.setenv("PREFECT_PROFILE", "cloud")
    pyproject(pytester)
    pytester.makepyfile(
        flows=SEEN,
        test_fresh="""
            import os
            from pathlib import Path
            from flows import record

            def test_home():
                home = Path(os.environ["PREFECT_HOME"])
                assert home.is_dir() and home.stat().st_mode & 0o777 == 0o700
                assert home.parent == Path(os.environ["LOCK_DIR"]) / "dirs"
                record("fresh")
            """,
    )
    pytester.syspathinsert()
    monkeypatch.setenv("LOCK_DIR", str(lock_dir()))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    home = private_home(result.stdout.str())
    found = seen(seen_dir, "fresh")
    assert found["environ"] == {
        "PREFECT_HOME": str(home),
        "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
        "PREFECT_PROFILE": None,
    }
    assert (found["home"], found["profiles_path"]) == (str(home), str(home / "profiles.toml"))
    assert list(user_home.iterdir()) == []
    assert_removed(home)


@pytest.mark.parametrize("case", ["user PREFECT_HOME", "ini false", "Prefect imported first"])
def test_the_plugin_leaves_the_home_alone(
    pytester: pytest.Pytester,
    user_home: Path,
    seen_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    args: list[str] = []
    if case == "user PREFECT_HOME":
        chosen = user_home / "chosen"
        monkeypatch.setenv("PREFECT_HOME", str(chosen))
        header = f"{chosen} (PREFECT_HOME from the environment)"
    elif case == "ini false":
        pyproject(pytester, "prefect_private_home = false")
        header = "the user's (ini prefect_private_home = false)"
    else:
        # A plugin named with -p loads before the entry points' plugins.
        pytester.makepyfile(early_plugin="import prefect")
        args = ["-p", "early_plugin"]
        header = "the user's (Prefect was imported before the plugin could set one)"
    if case != "ini false":
        pyproject(pytester)
    pytester.makepyfile(
        flows=SEEN,
        test_alone="""
            from flows import record

            def test_home():
                record("alone")
            """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"prefect-testkit: Prefect home: {header}"])
    found = seen(seen_dir, "alone")
    expected_home = user_home / ("chosen" if case == "user PREFECT_HOME" else ".prefect")
    assert found["home"] == str(expected_home)
    # Prefect's own behaviour: it made the home it was given.
    assert expected_home.is_dir()
    expected_environ = str(expected_home) if case == "user PREFECT_HOME" else None
    assert found["environ"] == {
        "PREFECT_HOME": expected_environ,
        "PREFECT_PROFILES_PATH": None,
        "PREFECT_PROFILE": None,
    }


def test_a_bad_switch_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pyproject(pytester, 'prefect_private_home = "sometimes"')
    pytester.makepyfile("def test_nothing(): pass")
    # In-process: the value is checked even where Prefect is imported already.
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: ini option prefect_private_home='sometimes' is not a boolean; set it to *"]
    )


@pytest.fixture
def managed_environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The variables the private home changes, with values it must restore."""
    values = {"PREFECT_PROFILE": "cloud"}
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_the_home_is_a_leased_private_directory_and_is_given_back(
    managed_environ: dict[str, str],
) -> None:
    home = enter_private_home()
    try:
        assert home.lease is not None
        assert home.path.parent == lock_dir() / "dirs"
        assert home.path.stat().st_mode & 0o777 == 0o700
        assert [lease.path for lease in list_leases()].count(home.path) == 1
        assert os.environ["PREFECT_HOME"] == str(home.path)
        assert os.environ["PREFECT_PROFILES_PATH"] == str(home.path / "profiles.toml")
        assert "PREFECT_PROFILE" not in os.environ
    finally:
        home.close()
    home.close()  # again: nothing happens
    assert_removed(home.path)
    assert {name: os.environ.get(name) for name in MANAGED_VARIABLES} == {
        "PREFECT_HOME": None,
        "PREFECT_PROFILES_PATH": None,
        **managed_environ,
    }


def test_without_a_usable_lock_directory_the_home_is_a_temporary_one(
    managed_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_TESTKIT_LOCK_DIR", "relative/path")
    home = enter_private_home()
    try:
        assert home.lease is None
        assert home.path.stat().st_mode & 0o777 == 0o700
        assert os.environ["PREFECT_HOME"] == str(home.path)
    finally:
        home.close()
    assert not home.path.exists()
    assert os.environ["PREFECT_PROFILE"] == managed_environ["PREFECT_PROFILE"]
