"""What the plugin tells the user: header, failure sections, hints and a per-worker summary."""

from __future__ import annotations

import sys
from collections.abc import Generator
from importlib.metadata import version
from typing import Any

import pytest

from prefect_testkit.config import database_description
from prefect_testkit_xdist import AllocatorError, lock_dir
from pytest_prefect_testkit._escape import check_phase
from pytest_prefect_testkit._home import home_key
from pytest_prefect_testkit._options import DISABLE_FLAG, KEEP_DB_FLAG, PluginOptions
from pytest_prefect_testkit._session import get_manager

WORKEROUTPUT_KEY = "prefect_testkit"
SERVER_LOG_LINES = 30

remote_summaries_key = pytest.StashKey[list[dict[str, Any]]]()


def header_lines(options: PluginOptions) -> list[str]:
    if options.disabled:
        server = f"disabled by {DISABLE_FLAG} (tests that need it are skipped)"
        where = "none"
    else:
        server = "started lazily by the first test that needs it, one per xdist worker"
        where = database_description(options.database)
        if where.startswith("PostgreSQL"):
            where += ", ptk_<run>_<worker>_<n> per worker"
        elif where == "SQLite":
            try:
                where = f"{lock_dir() / 'dirs'}/<worker>_harness_<n>/prefect.db"
            except AllocatorError as exc:
                where = f"unknown ({exc})"
        where += " (kept after the run)" if options.keep_db else f" (removed; {KEEP_DB_FLAG} keeps)"
    autouse = "every test" if options.autouse else "tests that request it"
    if options.disabled:
        autouse = "no test"
    lines = [
        f"prefect-testkit: Prefect {version('prefect')}; server: {server}",
        f"prefect-testkit: database: {where}; harness for: {autouse}",
    ]
    if options.shard is not None:
        lines.append(f"prefect-testkit: shard {options.shard} (from {options.shard.source})")
    return lines


def failure_sections(item: pytest.Item, call: pytest.CallInfo[None]) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    if call.excinfo is not None and "prefect" in sys.modules:
        from prefect_testkit_logging import missing_context_hint

        hint = missing_context_hint(call.excinfo.value)
        if hint is not None:
            sections.append(("prefect-testkit hint", hint))
    handle = get_manager(item.config).active
    if handle is not None:
        returncode = handle.server_returncode
        state = "running" if returncode is None else f"exited with code {returncode}"
        title = (
            f"Prefect server log, last {SERVER_LOG_LINES} lines "
            f"({handle.api_url}, {state}; {handle.log_path})"
        )
        sections.append((title, handle.log_tail(SERVER_LOG_LINES)))
    return sections


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        report.sections.extend(failure_sections(item, call))
    # After the sections: a test failed only for a refused client needs no server log.
    check_phase(item, report)
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = header_lines(get_manager(config).options)
    home = config.stash.get(home_key, None)
    if home is not None:
        lines.append(f"prefect-testkit: Prefect home: {home.description}")
    return lines


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        summary = get_manager(session.config).summary()
        if summary is not None:
            workeroutput[WORKEROUTPUT_KEY] = summary


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    summary = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
    if summary is not None:
        node.config.stash.setdefault(remote_summaries_key, []).append(summary)


def death_line(worker: str, death: dict[str, Any]) -> str:
    if death["restarted"]:
        outcome = "restarted"
    else:
        outcome = "not restarted (one restart per worker): later tests that needed it failed"
    return (
        f"prefect-testkit: server for {worker} died during test {death['test']} "
        f"(exit {death['exit_code']}); {outcome}"
    )


def summary_line(summary: dict[str, Any]) -> list[str]:
    worker = summary["worker"]
    lines = [death_line(worker, death) for death in summary.get("deaths", [])]
    if "api_url" in summary:
        lines.append(
            f"prefect-testkit: {worker}: server {summary['api_url']} (pid "
            f"{summary['server_pid']}), database {summary['database']}, healthy after "
            f"{summary['startup_seconds']:.1f} s, {summary['resets']} database reset(s) in "
            f"{summary['reset_seconds']:.2f} s"
        )
        if summary["kept"]:
            lines.append(
                f"prefect-testkit: {worker}: kept database {summary['database']} "
                f"and server log {summary['log_path']}"
            )
    if "failure" in summary:
        lines.append(
            f"prefect-testkit: {worker}: the server failed to start "
            f"({summary['attempts']} attempt, not retried): {summary['failure']}"
        )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    if hasattr(config, "workerinput"):
        return
    remote: list[dict[str, Any]] = config.stash.get(remote_summaries_key, [])
    summaries = sorted(remote, key=lambda s: str(s["worker"]))
    local = get_manager(config).summary()
    if local is not None:
        summaries.insert(0, local)
    if get_manager(config).options.disabled:
        terminalreporter.write_line(f"prefect-testkit: no server ({DISABLE_FLAG})")
        return
    if not summaries:
        terminalreporter.write_line(
            "prefect-testkit: no Prefect server was started (no test needed one)"
        )
        return
    for summary in summaries:
        for line in summary_line(summary):
            terminalreporter.write_line(line)
