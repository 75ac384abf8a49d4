"""The main of every Bazel py_test here (tools/bazel/pytest.bzl): run pytest the way nox does.

Usage (the macro writes these arguments), paths relative to the workspace root:
pytest_main.py (--config=FILE | --rootdir=DIR) [pytest arguments...] --tests=PATH

- ``--config`` is the package's pyproject.toml, so ``[tool.pytest.ini_options]`` applies as
  in ``nox -s tests``; its directory becomes the rootdir and the working directory, as there,
  so node ids (``tests/test_x.py::test_y``) and relative paths are the same.
- JUnit XML goes to ``XML_OUTPUT_FILE``, where Bazel reads the results.
- ``bazel test --test_filter=EXPR`` selects tests as ``pytest -k EXPR`` would.
- Sharding (``shard_count`` on the target): Bazel sets ``TEST_TOTAL_SHARDS`` and
  ``TEST_SHARD_INDEX``. When pytest-prefect-testkit is loaded (a target depending on it), its
  own sharding selects the tests; otherwise the small plugin below does, with the same split:
  a test runs on shard ``crc32(node id) % TEST_TOTAL_SHARDS``. Either touches
  ``TEST_SHARD_STATUS_FILE``. A shard that gets no test passes.
- ``TMPDIR`` is a fresh ``/tmp/bzXXXXXXXX`` directory, removed at exit (Bazel 4 passes
  ``/tmp`` itself), so the allocator's default lock directory, the harness databases and
  pytest's ``tmp_path`` (``--basetemp=$TMPDIR/t``) are private to the test, in paths short
  enough for Unix sockets.
- Unless the environment sets it, ``PREFECT_HOME`` is ``$TEST_TMPDIR/prefect-home``, created
  before anything imports Prefect: each target and shard has its own, never the user's
  ``~/.prefect`` (which the sandbox keeps read-only, and which may not exist). Nothing else of
  the environment (``HOME`` included) is changed.
- No bytecode is written: the sources are read-only in the sandbox (and must stay untouched
  outside it), and the venv's bytecode was compiled when it was made.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

# Before anything imports a test module or Prefect, and for every child process.
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

NO_TESTS_COLLECTED = 5


def _bazel_environment() -> str | None:
    """Set up the environment of a test under Bazel; return its private temporary directory."""
    test_tmpdir = os.environ.get("TEST_TMPDIR")
    if not test_tmpdir:
        return None
    # Bazel 4 passes TMPDIR=/tmp (writable in its sandbox), which every test would share. Each
    # sandboxed test has its own pid namespace, so pids in a shared lock directory are
    # ambiguous across tests: each test process gets a private TMPDIR (its harnesses and child
    # processes inherit it), so its own default lock directory, databases and tmp_path. Not
    # TEST_TMPDIR itself: that path is so deep that a Unix socket inside it would exceed the
    # 108 bytes of sockaddr_un (the harness's server factory listens on one there).
    # --config=shared-locks (PREFECT_TESTKIT_LOCK_DIR) opts back into one shared directory.
    base = "/tmp" if os.access("/tmp", os.W_OK) else test_tmpdir
    private = tempfile.mkdtemp(prefix="bz", dir=base)
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    os.environ["TMPDIR"] = private
    tempfile.tempdir = None
    # Prefect's home (profiles, settings, its default storage) is this target's or shard's own,
    # in TEST_TMPDIR, and exists before Prefect is imported: otherwise importing Prefect would
    # try to create ~/.prefect, which the sandbox does not let it write (on a machine where it
    # does not exist yet, the warning it gives fails every test under filterwarnings = error),
    # and tests would read the user's profiles. HOME itself is left as it is.
    # --test_env=PREFECT_HOME=... chooses another one.
    if not os.environ.get("PREFECT_HOME"):
        prefect_home = Path(test_tmpdir) / "prefect-home"
        prefect_home.mkdir(mode=0o700, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    return private


def _shard() -> tuple[int, int] | None:
    total = os.environ.get("TEST_TOTAL_SHARDS", "").strip()
    if not total or int(total) <= 1:
        return None
    return int(os.environ["TEST_SHARD_INDEX"]), int(total)


class BazelShardPlugin:
    """Select this shard's tests, unless pytest-prefect-testkit (which shards itself) is loaded."""

    def __init__(self, index: int, total: int) -> None:
        self.index = index
        self.total = total

    def pytest_configure(self, config: object) -> None:
        status_file = os.environ.get("TEST_SHARD_STATUS_FILE")
        if status_file:
            Path(status_file).touch()  # "this runner understands sharding"

    def pytest_collection_modifyitems(self, config, items) -> None:  # type: ignore[no-untyped-def]
        if hasattr(config.option, "prefect_shard"):
            return  # pytest-prefect-testkit's own hook selects the same split
        keep, drop = [], []
        for item in items:
            shard = zlib.crc32(item.nodeid.encode("utf-8")) % self.total
            (keep if shard == self.index else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_report_header(self) -> str:
        return f"bazel shard {self.index + 1} of {self.total} (crc32 of the node id)"


def main(argv: list[str]) -> int:
    private_tmp = _bazel_environment()
    import pytest

    # Like `nox -s tests`: work in the directory of the configuration file, which is the
    # rootdir, and name the tests relative to it (node ids are then the same as there).
    config = next((a.removeprefix("--config=") for a in argv if a.startswith("--config=")), None)
    rootdir = next((a.removeprefix("--rootdir=") for a in argv if a.startswith("--rootdir=")), ".")
    if config is not None:
        rootdir = os.path.dirname(config) or "."
    args: list[str] = [f"--rootdir={os.path.abspath(rootdir)}"]
    if config is not None:
        args += ["-c", os.path.abspath(config)]
    for arg in argv:
        if arg.startswith("--tests="):
            args.append(os.path.relpath(arg.removeprefix("--tests="), rootdir))
        elif not arg.startswith(("--config=", "--rootdir=")):
            args.append(arg)
    os.chdir(rootdir)
    # The runfiles tree is read-only in the sandbox and rebuilt between runs: no cache.
    # -v: a test log read later names every test it ran (and so each shard its share).
    args[:0] = ["-p", "no:cacheprovider", "-v"]
    if private_tmp is not None and not any(a.startswith("--basetemp") for a in args):
        # tmp_path = <private>/t/<test name>: as short as under nox (pytest-of-<user>/pytest-N
        # adds nothing here), for tests that put Unix sockets below tmp_path.
        args.insert(0, f"--basetemp={private_tmp}/t")
    test_filter = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]  # bazel test --test_filter=EXPRESSION
    xml_output = os.environ.get("XML_OUTPUT_FILE")
    if xml_output:
        args.insert(0, f"--junitxml={xml_output}")

    plugins: list[object] = []
    shard = _shard()
    if shard is not None:
        plugins.append(BazelShardPlugin(*shard))
    code = int(pytest.main(args, plugins=plugins))
    if code == NO_TESTS_COLLECTED and shard is not None:
        return 0  # every test of this target hashed to other shards
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
