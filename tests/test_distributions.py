"""The release distributions work from a wheelhouse alone (what `nox -s build` makes).

tools/release/distributions.py builds every package's sdist and a wheel from it, as `nox -s
build` does, and checks them. A new virtualenv then gets the third-party requirements the
wheels declare (Prefect...) from the package index, and pytest-prefect-testkit from the built
files alone (`pip install --no-index --find-links DIST`), and runs a user's flow test through
the plugin there: the four distributions must be the built ones, installed in that virtualenv
at the monorepo's version, not the checkout. About a minute with uv on PATH (which then
installs the third-party packages and build's environments), more with pip alone. Not run by
Bazel (tests/BUILD.bazel): it needs the package index.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RELEASE_SCRIPT = ROOT / "tools" / "release" / "distributions.py"
TOOLKIT = {
    "prefect-testkit-core",
    "prefect-testkit-logging",
    "prefect-testkit-xdist",
    "pytest-prefect-testkit",
}


def load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_distributions", RELEASE_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = load_release()


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment with `venv` first on PATH, and none of this session's Python settings."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_", "PREFECT_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "VIRTUAL_ENV": str(venv), **extra}


def run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed ({result.returncode}):\n{output}"
    return output


def new_venv(path: Path) -> Path:
    """A new virtualenv with pip (python -m venv), made from the base interpreter."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path


def install_from_index(venv: Path, requirements: list[str]) -> None:
    """Third-party packages from the package index: with uv when on PATH (faster), else pip."""
    env = clean_env(venv)
    python = str(venv / "bin" / "python")
    uv = shutil.which("uv")
    if uv:
        run([uv, "pip", "install", "--quiet", "--python", python, *requirements], env)
    else:
        run([python, "-m", "pip", "install", "--quiet", *requirements], env)


USER_TEST = '''
"""A user's flow test, run by the plugin's session harness."""

import importlib.metadata
import os
import sysconfig
from pathlib import Path

import prefect.settings
from prefect import flow, task

import prefect_testkit
import prefect_testkit_logging
import prefect_testkit_xdist
import pytest_prefect_testkit


@task
def double(value: int) -> int:
    return 2 * value


@flow
def doubled(values: list[int]) -> list[int]:
    return [double(value) for value in values]


def test_a_flow_runs_against_the_plugin_harness(prefect_harness, sync_prefect_client):
    assert prefect.settings.PREFECT_API_URL.value() == prefect_harness.api_url
    assert doubled([1, 2, 3]) == [2, 4, 6]
    (run,) = sync_prefect_client.read_flow_runs()
    assert run.state.is_completed()


def test_the_toolkit_is_the_built_one_in_this_virtualenv():
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    checkout = Path(os.environ["CHECKOUT"]).resolve()
    modules = {
        "prefect-testkit-core": prefect_testkit,
        "prefect-testkit-logging": prefect_testkit_logging,
        "prefect-testkit-xdist": prefect_testkit_xdist,
        "pytest-prefect-testkit": pytest_prefect_testkit,
    }
    for name, module in modules.items():
        distribution = importlib.metadata.distribution(name)
        assert distribution.version == os.environ["EXPECTED_VERSION"]
        # pip records a direct_url.json for a path or URL install, none from a wheelhouse.
        assert distribution.read_text("direct_url.json") is None, name
        location = Path(module.__file__).resolve()
        assert location.is_relative_to(site_packages), location
        assert not location.is_relative_to(checkout), location
'''


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distributions, built and checked by tools/release as `nox -s build` does."""
    work = tmp_path_factory.mktemp("release")
    builder = new_venv(work / "builder")
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    install_from_index(builder, groups["release"])
    out = work / "dist"
    run(
        [str(builder / "bin" / "python"), str(RELEASE_SCRIPT), "--out", str(out)],
        clean_env(builder),
    )
    return out


def test_the_toolkit_installs_from_its_distributions_alone_and_runs_a_flow_test(
    dist: Path, tmp_path: Path
) -> None:
    version = release.version()
    third_party = set()
    for wheel in dist.glob("*.whl"):
        for text in release.read_metadata(wheel).get_all("Requires-Dist") or []:
            requirement = Requirement(text)
            if requirement.name not in TOOLKIT and not requirement.marker:
                third_party.add(text)
    assert any(Requirement(text).name == "prefect" for text in third_party)
    venv = new_venv(tmp_path / "venv")
    install_from_index(venv, sorted(third_party))

    report = tmp_path / "report.json"
    python = str(venv / "bin" / "python")
    only_dist = ["--no-index", "--find-links", str(dist), "--report", str(report)]
    run([python, "-m", "pip", "install", *only_dist, "pytest-prefect-testkit"], clean_env(venv))
    installed = {
        item["metadata"]["name"]: (item["metadata"]["version"], item["download_info"]["url"])
        for item in json.loads(report.read_text())["install"]
    }
    assert set(installed) == TOOLKIT, installed
    for name, (installed_version, url) in installed.items():
        assert installed_version == version, name
        assert url.startswith(dist.as_uri() + "/"), url
        assert url.endswith(".whl"), url

    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_user_flow.py").write_text(USER_TEST)
    env = clean_env(
        venv,
        CHECKOUT=str(ROOT),
        EXPECTED_VERSION=version,
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_user_flow.py"]
    output = run(command, env, cwd=project)
    assert "2 passed" in output, output


def test_the_check_names_an_unpinned_sibling_and_a_direct_reference(tmp_path: Path) -> None:
    version = release.version()
    wheel = tmp_path / f"pytest_prefect_testkit-{version}-py3-none-any.whl"
    metadata = (
        f"Metadata-Version: 2.4\nName: pytest-prefect-testkit\nVersion: {version}\n"
        "Requires-Dist: prefect-testkit-core>=0.1\n"
        "Requires-Dist: prefect-testkit-xdist @ file:///somewhere/prefect-testkit-xdist\n"
        f"Requires-Dist: prefect-testkit-logging=={version}\n"
        "Requires-Dist: prefect<3.10,>=3.0.0\n"
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"pytest_prefect_testkit-{version}.dist-info/METADATA", metadata)
    found = release.problems(tmp_path, version)
    assert f"{wheel.name}: 'prefect-testkit-core>=0.1' is not pinned to =={version}" in found
    assert any(
        "prefect-testkit-xdist @ file:" in problem and "direct" in problem for problem in found
    )
    assert not any("'prefect-testkit-logging==" in problem for problem in found)
    assert not any("'prefect<" in problem for problem in found)
    assert f"pytest-prefect-testkit: no sdist in {tmp_path}" in found
