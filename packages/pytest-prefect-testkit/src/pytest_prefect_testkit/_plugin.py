"""The pytest plugin, registered through the ``pytest11`` entry point ``prefect_testkit``.

Hooks live here; fixtures and report hooks are imported from the private modules so that
pytest finds them on this module.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Generator
from contextlib import ExitStack

import pytest

from pytest_prefect_testkit._escape import start_watching
from pytest_prefect_testkit._fixtures import (
    ISOLATED_MARKER,
    _prefect_harness_autouse,
    _prefect_isolation,
    prefect_clean_db,
    prefect_client,
    prefect_harness,
    prefect_logs,
    sync_prefect_client,
)
from pytest_prefect_testkit._home import set_up_home
from pytest_prefect_testkit._options import add_options, options_key, read_options
from pytest_prefect_testkit._report import (
    pytest_report_header,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)
from pytest_prefect_testkit._session import HarnessManager, get_manager, manager_key
from pytest_prefect_testkit._sharding import configure_sharding, select_shard

__all__ = [
    "_prefect_harness_autouse",
    "_prefect_isolation",
    "prefect_clean_db",
    "prefect_client",
    "prefect_harness",
    "prefect_logs",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_report_header",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_runtest_teardown",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
    "pytest_unconfigure",
    "sync_prefect_client",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


# Neither tryfirst nor trylast: after the tryfirst implementations, such as pytest-env's,
# which may set PREFECT_HOME from the ini file, and before pytest's own (trylast), which
# imports the conftests, where a suite usually imports Prefect first. Plugins loaded before
# this one (`-p`, PYTEST_PLUGINS) may have imported it already; set_up_home checks.
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    set_up_home(early_config)


# tryfirst: junitxml reads config.option.xmlpath in its own pytest_configure, and Bazel's
# XML_OUTPUT_FILE has to be in place by then.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ISOLATED_MARKER}: give the test an empty Prefect database (no flow runs, "
        "deployments, blocks, variables, logs or events from earlier tests) without "
        "starting another server; works on functions, classes and modules.",
    )
    options = read_options(config)
    shard = configure_sharding(config, options.shard)
    options = dataclasses.replace(options, shard=shard)
    config.stash[options_key] = options
    config.stash[manager_key] = HarnessManager(options)


def pytest_unconfigure(config: pytest.Config) -> None:
    # Normally the session fixture's teardown has stopped it already; this covers a
    # session that ended without tearing fixtures down.
    manager = config.stash.get(manager_key, None)
    if manager is not None:
        manager.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = get_manager(config).options.shard
    if shard is not None:
        select_shard(config, items, shard)


_bridge_key = pytest.StashKey[ExitStack]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    get_manager(item.config).before_test(item.nodeid)
    start_watching(item)
    # Around all three phases: caplog_bridge follows the handlers pytest's logging plugin
    # swaps in for setup, call and teardown.
    with ExitStack() as bridge:
        item.stash[_bridge_key] = bridge
        _bridge_run_logs_once_prefect_is_loaded(item)
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    _bridge_run_logs_once_prefect_is_loaded(item)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    _bridge_run_logs_once_prefect_is_loaded(item)
    return (yield)


def _bridge_run_logs_once_prefect_is_loaded(item: pytest.Item) -> None:
    """Let caplog see run logs, from the first phase in which Prefect is imported.

    Bridging sets up Prefect's logging, which imports Prefect: done for a test that never
    loaded it, that would configure Prefect before the suite's own settings and print its
    log lines outside pytest's capture. A test whose module imports Prefect is bridged from
    its setup on; one that loads it in a fixture, from its call phase on.
    """
    bridge = item.stash.get(_bridge_key, None)
    if bridge is None or "prefect" not in sys.modules:
        return
    from prefect_testkit_logging import caplog_bridge

    bridge.enter_context(caplog_bridge())
    del item.stash[_bridge_key]
