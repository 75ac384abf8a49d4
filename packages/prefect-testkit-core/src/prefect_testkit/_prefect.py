"""Where the harness reaches into Prefect: its settings contexts, its in-process registries,
its API clients' classes and the server's transaction setup. (Its background workers are
drained by `prefect_testkit_logging.drain_workers`, which the logging package's readers use.)

Everything here depends on how a Prefect release works inside, not only on its public
API; keeping it in one module is what lets the toolkit follow Prefect's releases in one
place. Every difference between the Prefect 3 releases the toolkit supports (3.0 to 3.9)
is decided here, by capability rather than by version number, and each check names the
releases it serves. (Emptying the database inside the server is the server-side
counterpart, in `_server/reset.py`; the logging package has its own `_prefect.py`.)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import os
import sys
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
import prefect
import prefect.context
import prefect.settings
from packaging.requirements import Requirement
from packaging.version import Version

from prefect_testkit import _route as route
from prefect_testkit._errors import OtherAPIError, PrefectCompatibilityWarning

if TYPE_CHECKING:
    from prefect.server.database.interface import PrefectDBInterface
    from prefect.settings.legacy import Setting

#: Whether the API can require an auth string (PREFECT_API_AUTH_STRING: 3.1+). On 3.0 a
#: harness's server answers any local client, as Prefect's own does.
API_AUTH_SUPPORTED = hasattr(prefect.settings, "PREFECT_API_AUTH_STRING")

# 3.0's ephemeral app runs no server services, so task runs and events would never reach
# the database: its server runs as a full one, with the services a test has no use for off
# (3.1+ run exactly the ephemeral set). A value the user set wins.
_LOOP_SERVICES_OFF_3_0 = {
    f"PREFECT_API_SERVICES_{name}_ENABLED": "false"
    for name in (
        "SCHEDULER",
        "LATE_RUNS",
        "PAUSE_EXPIRATIONS",
        "CANCELLATION_CLEANUP",
        "FLOW_RUN_NOTIFICATIONS",
        "FOREMAN",
    )
}

# Where a test server's defaults differ from Prefect's; a value the user set wins.
SERVER_DEFAULTS = {
    # Persist each event as it arrives, so that once the message bus is quiet every
    # event is in the database: reset_database() must not race a 5 s flush buffer.
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "1",
}


@contextlib.contextmanager
def server_settings(home: Path, database_url: str) -> Iterator[None]:
    """Point this process's Prefect at the harness's home and database, with no credential.

    Server-side code in this process (tests of Prefect server models, say) must use the
    harness's database too, not a cached interface: swapped only if something imported
    it already (the import costs a second, and later importers read these settings).
    """
    with contextlib.ExitStack() as stack:
        dependencies = sys.modules.get("prefect.server.database.dependencies")
        if dependencies is not None:
            stack.enter_context(dependencies.temporary_database_interface())
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={
                    prefect.settings.PREFECT_HOME: str(home),
                    **_paths_under(home),
                    prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url,
                    **_client_defaults(),
                    **_credentials(),
                },
            )
        )
        yield


def _credentials() -> dict[Setting, object]:
    """The settings that carry a developer's credential to whatever API a client reaches,
    emptied inside a harness. Set, not restored to their defaults: 3.0 would read a default
    from the environment again."""
    empty: dict[str, object] = {"PREFECT_API_KEY": None, "PREFECT_CLIENT_CUSTOM_HEADERS": {}}
    return {
        getattr(prefect.settings, name): value
        for name, value in empty.items()
        if hasattr(prefect.settings, name)
    }


def _paths_under(home: Path) -> dict[Setting, object]:
    """The paths Prefect derives from PREFECT_HOME (results, memo store), unless set.

    3.0 and 3.9 derive them again from a temporary PREFECT_HOME; releases between (3.6,
    for one) keep the ones derived from the user's home, and results would be written
    to ~/.prefect/storage. Set explicitly, they are right on every release.
    """
    settings = prefect.settings.get_current_settings()
    names = {  # Prefect's own names under the home
        prefect.settings.PREFECT_LOCAL_STORAGE_PATH: "storage",
        prefect.settings.PREFECT_MEMO_STORE_PATH: "memo_store.toml",
    }
    updates: dict[Setting, object] = {}
    for setting, name in names.items():
        group, field = setting.accessor.rsplit(".", 1)  # e.g. "results", "local_storage_path"
        if field not in operator.attrgetter(group)(settings).model_fields_set:
            updates[setting] = home / name
    return updates


def _client_defaults() -> dict[Setting, object]:
    """Settings of the test process where the harness's defaults differ from Prefect's."""
    settings = prefect.settings.get_current_settings()
    defaults: dict[Setting, object] = {}
    heartbeat = getattr(prefect.settings, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)  # 3.6+
    if heartbeat is not None and "heartbeat_frequency" not in settings.flows.model_fields_set:
        # Every flow run joins its heartbeat thread on exit, which sleeps in 1 s steps:
        # about a second per flow. Set PREFECT_FLOWS_HEARTBEAT_FREQUENCY to keep them.
        defaults[heartbeat] = None
    check = getattr(prefect.settings, "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED", None)  # 3.6+
    if check is not None and "server_version_check_enabled" not in settings.client.model_fields_set:
        # The harness's server is this Prefect. The check, before every events connection,
        # uses a plain httpx client, which an HTTP mock would intercept.
        defaults[check] = False
    return defaults


@functools.cache
def check_working_set() -> None:
    """Warn, once per process, when a library is outside this Prefect minor's working set.

    The ranges are core's `prefect-3-N` extras (pyproject.toml), read from the installed
    metadata: the one record of which web libraries each Prefect minor needs.
    """
    version = Version(prefect.__version__)
    extra = f"prefect-{version.major}-{version.minor}"
    outside = working_set_mismatches(metadata.requires("prefect-testkit-core") or [], extra)
    if outside:
        warnings.warn(
            PrefectCompatibilityWarning(
                f"Prefect {prefect.__version__} was tested with other versions of "
                f"{', '.join(outside)}; its test server may fail (HTTP 422 or 500 answers, "
                f"import errors). Install its working set: "
                f'pip install "prefect-testkit-core[{extra}]"'
            ),
            stacklevel=2,
        )


def working_set_mismatches(requirements: list[str], extra: str) -> list[str]:
    """The installed libraries outside the ranges that `extra` of `requirements` pins."""
    outside = []
    for line in requirements:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or requirement.name == "prefect" or not marker.evaluate({"extra": extra}):
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(
                f"{requirement.name} ({installed} installed, {requirement.specifier} needed)"
            )
    return outside


def server_environment(auth_string: str | None, api_url: str) -> dict[str, str]:
    """The child's environment: ours, the current Prefect settings, and test-server defaults.

    It reaches the child through the environment (spawned: readable by our user only) or
    over the factory's private socket (forked): never on a command line.
    """
    settings_env = prefect.settings.get_current_settings().to_environment_variables(
        exclude_unset=True
    )
    if auth_string is not None:
        settings_env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    return {
        **SERVER_DEFAULTS,
        **os.environ,
        **settings_env,
        # What code in the server reaches as "the API" is the server itself.
        **_environment_of_children(api_url, auth_string),
        # A test server must make no connection beyond loopback.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }


def _environment_of_children(api_url: str, auth_string: str | None) -> dict[str, str]:
    """What makes a child process's Prefect use the harness, whatever its working directory.

    The blank key and the profiles file (none, under the harness's home) beat a developer's
    key in the environment, a profile, a ``.env`` or a ``prefect.toml``.
    """
    home = prefect.settings.get_current_settings().home
    env = {
        "PREFECT_API_URL": api_url,
        "PREFECT_API_KEY": "",
        "PREFECT_PROFILES_PATH": str(Path(home) / "profiles.toml"),
    }
    if API_AUTH_SUPPORTED:
        env["PREFECT_API_AUTH_STRING"] = auth_string or ""
    return env


# Each in both cases, as httpx and curl read them.
_PROXY_VARIABLES = [
    name
    for scheme in ("HTTP", "HTTPS", "ALL")
    for name in (f"{scheme}_PROXY", f"{scheme}_proxy".lower())
]


@contextlib.contextmanager
def children_environment(api_url: str, auth_string: str | None) -> Iterator[None]:
    """Make child processes use the harness: this process's Prefect settings, exported.

    A child (``python -c``, the ``prefect`` CLI, a shell task) reads its settings from the
    environment it inherits: it gets every setting this process has inside the harness (a
    profile's values included, credentials not), and no profile of its own. ``NO_PROXY``
    keeps a proxy from the environment off the harness's loopback traffic.
    """
    settings = prefect.settings.get_current_settings()
    env = {
        **settings.to_environment_variables(exclude_unset=True),
        **_environment_of_children(api_url, auth_string),
    }
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        for name in ("NO_PROXY", "no_proxy"):
            env[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def client_settings(api_url: str, auth_string: str | None, port: int) -> Iterator[None]:
    """Point every Prefect client of this process at the harness's server."""
    updates: dict[Setting, object] = {prefect.settings.PREFECT_API_URL: api_url}
    if API_AUTH_SUPPORTED:
        updates[prefect.settings.PREFECT_API_AUTH_STRING] = auth_string
    with contextlib.ExitStack() as stack:
        stack.enter_context(prefect.settings.temporary_settings(updates=updates))
        # Contexts copied before the harness started (an IsolatedAsyncioTestCase built at
        # collection time, say) read the process-global settings: point those at us too.
        stack.enter_context(_global_settings_context(prefect.context.get_settings_context()))
        stack.enter_context(_registered_as_default_server(port))
        stack.enter_context(children_environment(api_url, auth_string))
        yield


@dataclass
class Route:
    """Where this process's Prefect API clients may go while a harness is active."""

    api_url: str
    hide_from_http_mocks: bool  # the harness's traffic takes the private route (_route.py)
    allow_other_apis: bool
    refused: list[str] = field(default_factory=list)  # the other APIs clients were built for

    def check(self, base_url: object, transport: object) -> None:
        """Refuse a client for another Prefect API, naming both URLs."""
        if (
            self.allow_other_apis
            or not base_url
            or route.same_origin(str(base_url), httpx.URL(self.api_url))
            # An explicit transport that is not httpx's network one (an in-process ASGI
            # app, as Prefect's own server tests use) reaches no other server.
            or not isinstance(transport, httpx.HTTPTransport | httpx.AsyncHTTPTransport | None)
        ):
            return
        self.refused.append(str(base_url))
        raise OtherAPIError(str(base_url), self.api_url)


# The active harnesses' routes, innermost last: Prefect's client classes are patched once,
# by the outermost harness, and every client follows the innermost route.
_ROUTES: list[Route] = []
_ROUTED_ATTRIBUTE = "_prefect_testkit_route"  # (origin, transport) on a routed client


@contextlib.contextmanager
def routed_clients(active: Route) -> Iterator[None]:
    """Send Prefect's API clients to the harness on the private route, and nowhere else."""
    with contextlib.ExitStack() as stack:
        if not _ROUTES:
            from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
            from prefect.events.clients import PrefectEventsClient

            stack.enter_context(_routed(PrefectHttpxAsyncClient, route.AsyncTransport))
            stack.enter_context(_routed(PrefectHttpxSyncClient, route.SyncTransport))
            stack.enter_context(_guarded_events(PrefectEventsClient))
        _ROUTES.append(active)
        stack.callback(_ROUTES.remove, active)
        yield


def _routed(cls: type[Any], transport_type: Callable[[httpx.Limits | None], Any]) -> Any:
    """Patch ``cls`` (an httpx client class of Prefect's) to follow the innermost route."""
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        active = _ROUTES[-1]
        base_url, transport = kwargs.get("base_url"), kwargs.get("transport")
        active.check(base_url, transport)
        origin, own = httpx.URL(active.api_url), None
        ours = transport is None and route.same_origin(str(base_url), origin)
        if active.hide_from_http_mocks and ours:
            own = transport_type(kwargs.get("limits"))
            # Mounted, so that closing the client closes it.
            mounts = {**(kwargs.get("mounts") or {}), route.origin_pattern(origin): own}
            kwargs["mounts"] = mounts
        init(self, *args, **kwargs)
        setattr(self, _ROUTED_ATTRIBUTE, (origin, own))

    def _transport_for_url(self: Any, url: httpx.URL) -> Any:
        origin, own = getattr(self, _ROUTED_ATTRIBUTE, (None, None))
        if origin is not None and own is not None and route.same_origin(url, origin):
            return own  # not httpx's method, which respx(using="httpx") replaces
        return super(cls, self)._transport_for_url(url)

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(cls, "__init__", __init__))
    stack.enter_context(mock.patch.object(cls, "_transport_for_url", _transport_for_url))
    return stack


def _guarded_events(cls: type[Any]) -> Any:
    """Patch Prefect's events client (websockets; its Cloud subclass too) to refuse
    another API, as `_routed` does for the HTTP clients."""
    init = cls.__init__

    def __init__(self: Any, api_url: str | None = None, *args: Any, **kwargs: Any) -> None:
        _ROUTES[-1].check(api_url or prefect.settings.PREFECT_API_URL.value(), None)
        init(self, api_url, *args, **kwargs)

    return mock.patch.object(cls, "__init__", __init__)


@contextlib.contextmanager
def _registered_as_default_server(port: int) -> Iterator[None]:
    """Make Prefect code that asks for "the" ephemeral server find ours, not start one.

    Only when this process has imported Prefect's server module already: importing it
    costs seconds, and code that has not imported it cannot have asked for a server.
    """
    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        yield
        return
    SubprocessASGIServer = server_module.SubprocessASGIServer
    registry = SubprocessASGIServer._instances
    saved = {key: registry.get(key) for key in (None, port)}
    alias = SubprocessASGIServer(port=port)
    alias.running = True  # so that start() never spawns a second server
    registry[None] = alias
    try:
        yield
    finally:
        for key, previous in saved.items():
            if previous is None:
                registry.pop(key, None)
            else:
                registry[key] = previous


@contextlib.contextmanager
def _global_settings_context(settings_context: Any) -> Iterator[None]:
    """Replace the process-global settings context for the duration."""
    replace = getattr(prefect.context, "_temporary_global_settings_context", None)  # 3.8+
    if replace is not None:
        with replace(settings_context):
            yield
        return
    saved = prefect.context.GLOBAL_SETTINGS_CONTEXT  # 3.0-3.7: the same swap, by hand
    prefect.context.GLOBAL_SETTINGS_CONTEXT = settings_context
    try:
        yield
    finally:
        prefect.context.GLOBAL_SETTINGS_CONTEXT = saved


def reload_settings_from_environment() -> None:
    """Make a forked server read its settings again: the factory imported Prefect earlier."""
    refresh = getattr(prefect.context, "refresh_global_settings_context", None)  # 3.6+
    if refresh is not None:
        refresh()
    else:  # 3.0-3.5: what refresh does
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.root_settings_context()


def create_server_app() -> Any:
    """Prefect's API app as a harness serves it, with the services that record runs."""
    from prefect.server.api.server import create_app

    if "final" in inspect.signature(create_app).parameters:  # 3.1+
        # final: the last app this process builds, so Prefect need not copy its routes.
        return create_app(ephemeral=True, final=True)
    for name, value in _LOOP_SERVICES_OFF_3_0.items():
        os.environ.setdefault(name, value)
    reload_settings_from_environment()
    _count_message_bus_traffic()
    return create_app(ephemeral=False)


def _count_message_bus_traffic() -> None:
    """Count what the in-memory bus publishes and consumes where Prefect does not (3.0).

    3.1+ keep `memory.METRICS`: published per delivery to a subscription, consumed once a
    handler finished with the message. This counts the same, under the same name.
    """
    from prefect.server.utilities.messaging import memory

    if hasattr(memory, "METRICS"):
        return
    metrics: dict[str, dict[str, int]] = defaultdict(lambda: {"published": 0, "consumed": 0})
    deliver, run = memory.Subscription.deliver, memory.Consumer.run

    async def counted_deliver(self: Any, message: Any) -> None:
        metrics[self.topic.name]["published"] += 1
        await deliver(self, message)

    async def counted_run(self: Any, handler: Any) -> None:
        async def counted_handler(message: Any) -> None:
            await handler(message)
            metrics[self.topic.name]["consumed"] += 1

        await run(self, counted_handler)

    memory.Subscription.deliver = counted_deliver  # type: ignore[method-assign]
    memory.Consumer.run = counted_run  # type: ignore[method-assign]
    memory.METRICS = metrics


def provide_database_interface() -> PrefectDBInterface:
    """The server's database interface (`prefect.server.database` re-exports it from 3.1)."""
    from prefect.server.database.dependencies import provide_database_interface

    return provide_database_interface()


def migrations_directory() -> Path:
    """Where Prefect keeps its database migrations: `_migrations` since 3.1, `migrations` before."""
    database = Path(prefect.__file__).parent / "server" / "database"
    renamed = database / "_migrations"
    return renamed if renamed.is_dir() else database / "migrations"


def begin_sqlite_transactions_immediate() -> None:
    """Start every SQLite transaction that Prefect's server opens as BEGIN IMMEDIATE.

    Prefect opens most as DEFERRED: one that reads, then writes after another writer
    committed, fails at once with SQLITE_BUSY_SNAPSHOT (no busy timeout applies), and
    the API answers 503, which costs the client about 2 s of back-off. IMMEDIATE takes
    the write lock up front, so writers queue under the busy timeout instead.
    """
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin_deferred = AioSqliteConfiguration.begin_transaction

    @contextlib.asynccontextmanager
    async def begin_immediate(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AsyncIterator[Any]:
        async with begin_deferred(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]
