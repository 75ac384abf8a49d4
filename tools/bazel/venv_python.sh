#!/bin/sh
# The interpreter of every py_test (the py_runtime in tools/bazel/BUILD.bazel): the Python of
# the project virtualenv, which holds the pinned third-party packages of requirements.txt. The
# packages of this repository come from Bazel (py_library imports), never from the venv.
#
# The venv is .venv-bazel/ at the root of the checkout, found from this script's real path:
# runfiles hold a symlink to it. PREFECT_TESTKIT_BAZEL_VENV overrides that, e.g. for a remote
# executor whose image has the venv elsewhere (--test_env=PREFECT_TESTKIT_BAZEL_VENV=/opt/venv).
set -eu
if [ -n "${PREFECT_TESTKIT_BAZEL_VENV:-}" ]; then
    venv=$PREFECT_TESTKIT_BAZEL_VENV
else
    venv=$(dirname "$(readlink -f "$0")")/../../.venv-bazel
fi
if [ ! -x "$venv/bin/python3" ]; then
    echo "tools/bazel/venv_python.sh: no virtualenv at $venv;" \
        "create it with tools/bazel/setup-venv (or nox -s bazel)" >&2
    exit 1
fi
exec "$venv/bin/python3" "$@"
