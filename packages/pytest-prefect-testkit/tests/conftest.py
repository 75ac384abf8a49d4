from __future__ import annotations

import textwrap

# In-process pytester runs drop every module first imported during the run. The plugin
# imports Prefect lazily, so each run would import a second copy of Prefect beside objects
# of the first (a Flow of one copy is no Flow to the other): import once, for every run,
# what the inner suites use, as a suite's own conftest would.
import prefect.client.orchestration
import prefect.main  # noqa: F401
import pytest

import prefect_testkit_logging
from prefect_testkit import prefect_test_harness  # noqa: F401

for _name in prefect_testkit_logging.__all__:
    getattr(prefect_testkit_logging, _name)  # loads the module behind each name

# The machine is shared with other engineers' servers and benchmarks: starts of 40 s and
# more have been seen, so the inner suites allow far more than the 30 s default.
STARTUP = "--prefect-startup-timeout=240"

# Prefect's own async flow engine leaves a client socket open when a pytest-asyncio loop
# closes (reproduced with the core harness alone, without this plugin), and Prefect 3.0's
# sync Variable.set leaves a transport open (with its own harness too); neither is ours.
# Prefect 3.1-3.3 with pydantic-settings 2.11+ warn on import; Prefect's, not ours.
PREFECT_3_1_SETTINGS = (
    "ignore:Config key `.*` is set in model_config but will be ignored:UserWarning"
)
PREFECT_SOCKET_LEAK = (
    "ignore:Exception ignored in. <(socket.socket|function _SelectorTransport.__del__)"
    ":pytest.PytestUnraisableExceptionWarning"
)


def pyproject(
    pytester: pytest.Pytester,
    *lines: str,
    asyncio_mode: str | None = "strict",
) -> None:
    """Write the inner suite's configuration: strict markers, warnings are errors.

    ``asyncio_mode=None`` writes no pytest-asyncio settings (for runs with it disabled).
    """
    body = [
        "[tool.pytest.ini_options]",
        'addopts = ["--strict-markers", "-p", "no:cacheprovider"]',
        f'filterwarnings = ["error", "{PREFECT_SOCKET_LEAK}", "{PREFECT_3_1_SETTINGS}"]',
    ]
    if asyncio_mode is not None:
        body += [
            f'asyncio_mode = "{asyncio_mode}"',
            'asyncio_default_fixture_loop_scope = "function"',
        ]
    body += list(lines)
    pytester.makefile(".toml", pyproject="\n".join(body) + "\n")


FLOWS = textwrap.dedent(
    """
    from prefect import flow, get_run_logger, task


    @task
    def double(x: int) -> int:
        get_run_logger().info("doubling %d", x)
        return 2 * x


    @flow
    def make(x: int) -> int:
        get_run_logger().info("made %d", x)
        return double(x)


    @flow
    async def amake(x: int) -> int:
        get_run_logger().info("async made %d", x)
        return x
    """
)
