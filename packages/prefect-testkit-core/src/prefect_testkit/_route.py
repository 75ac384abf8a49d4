"""The harness's private route to its server: HTTP that mocking libraries do not intercept.

respx, pytest-httpx and VCR.py intercept httpx by replacing methods on its classes while a
mock is active: ``handle_request``/``handle_async_request`` of httpx's HTTP transports
(pytest-httpx, VCR.py) and of httpcore's pools and connections (respx), and the clients'
``_transport_for_url`` (respx's ``using="httpx"``). The classes here are subclasses that
keep those methods as they were when this module was imported, before any test started a
mock; a method replaced later on a base class does not reach them. Everything else is
httpx's and httpcore's own code, so requests on this route behave exactly as on the usual one.
The one exception is a respx route the user wrote to let the harness through: requests it
matches take the usual route, so that respx sees them as before.

This module imports no Prefect: ``prefect_testkit`` imports it first thing, so that the
plugin pins the methods before a suite can start a mock.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import httpcore
import httpx

__all__ = [
    "AsyncTransport",
    "Client",
    "SyncTransport",
    "origin_pattern",
    "pinning_error",
    "same_origin",
]

# httpx's own default, for a client that names no limits.
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _pin(cls: type, name: str) -> Any:
    """``cls``'s own ``name`` as it is now."""
    return cls.__dict__[name]


_PINNED = {
    (httpx.HTTPTransport, "handle_request"): _pin(httpx.HTTPTransport, "handle_request"),
    (httpx.AsyncHTTPTransport, "handle_async_request"): _pin(
        httpx.AsyncHTTPTransport, "handle_async_request"
    ),
    (httpcore.ConnectionPool, "handle_request"): _pin(httpcore.ConnectionPool, "handle_request"),
    (httpcore.AsyncConnectionPool, "handle_async_request"): _pin(
        httpcore.AsyncConnectionPool, "handle_async_request"
    ),
    (httpcore.HTTPConnection, "handle_request"): _pin(httpcore.HTTPConnection, "handle_request"),
    (httpcore.AsyncHTTPConnection, "handle_async_request"): _pin(
        httpcore.AsyncHTTPConnection, "handle_async_request"
    ),
}


def pinning_error() -> str | None:
    """Why the pinned methods are not httpx's and httpcore's own, or None when they are.

    They are not when a mock was already active as this module was imported (a global
    ``respx.mock`` started in a conftest that imports the toolkit later, say).
    """
    foreign = [
        f"{cls.__name__}.{name} (now {getattr(method, '__module__', None) or type(method)})"
        for (cls, name), method in _PINNED.items()
        if not str(getattr(method, "__module__", "")).startswith(("httpx", "httpcore"))
    ]
    if not foreign:
        return None
    return (
        f"an HTTP-mocking library had already replaced {', '.join(foreign)} when "
        "prefect_testkit was imported, so the harness cannot route around it. Import "
        "prefect_testkit (or load the pytest plugin) before starting a mock"
    )


def same_origin(url: httpx.URL | str, origin: httpx.URL) -> bool:
    """Whether ``url`` is on ``origin`` (scheme, host and port)."""
    url = httpx.URL(url)
    return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


def origin_pattern(origin: httpx.URL) -> str:
    """The httpx mount pattern that matches exactly ``origin``."""
    port = f":{origin.port}" if origin.port is not None else ""
    return f"{origin.scheme}://{origin.host}{port}"


class _SyncPool(httpcore.ConnectionPool):
    handle_request = _PINNED[httpcore.ConnectionPool, "handle_request"]

    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        connection = super().create_connection(origin)
        # An instance's own method wins over one a mock sets on its class later.
        connection.handle_request = types.MethodType(  # type: ignore[method-assign]
            _PINNED[httpcore.HTTPConnection, "handle_request"], connection
        )
        return connection


class _AsyncPool(httpcore.AsyncConnectionPool):
    handle_async_request = _PINNED[httpcore.AsyncConnectionPool, "handle_async_request"]

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        connection = super().create_connection(origin)
        connection.handle_async_request = types.MethodType(  # type: ignore[method-assign]
            _PINNED[httpcore.AsyncHTTPConnection, "handle_async_request"], connection
        )
        return connection


def _pool_options(limits: httpx.Limits) -> dict[str, Any]:
    # Plain HTTP to a loopback server: no TLS context, no proxy, HTTP/1.1 (the server's),
    # and Prefect's own three connect retries.
    return {
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "retries": 3,
    }


def passed_through_by_respx(request: httpx.Request) -> bool:
    """Whether an active respx router has a pass-through route of the user's for ``request``.

    Suites written for Prefect's harness carve its traffic out of their mocks, e.g.
    ``respx_mock.route(host="127.0.0.1").pass_through()``, and with
    ``assert_all_called=True`` respx fails the test when no request took that route. Such a
    request takes httpx's usual route, through respx, as it did before.
    """
    mocks = sys.modules.get("respx.mocks")
    mocker = getattr(mocks, "Mocker", None)
    if mocker is None:
        return False
    return any(
        route.is_pass_through and route.match(request) is request
        for kind in mocker.registry.values()
        for router in kind.routers
        for route in router.routes
    )


class SyncTransport(httpx.HTTPTransport):
    """httpx's transport for the harness's server, on a private pool."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        # verify=False: nothing here speaks TLS, so skip loading the CA bundle.
        super().__init__(verify=False)
        self._limits = limits or _DEFAULT_LIMITS
        self._pool = _SyncPool(**_pool_options(self._limits))
        self._usual: httpx.HTTPTransport | None = None  # for a respx carve-out

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if passed_through_by_respx(request):
            if self._usual is None:
                self._usual = httpx.HTTPTransport(verify=False, limits=self._limits)
            return self._usual.handle_request(request)
        return _PINNED[httpx.HTTPTransport, "handle_request"](self, request)  # type: ignore[no-any-return]

    def close(self) -> None:
        super().close()
        if self._usual is not None:
            self._usual.close()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class AsyncTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport for the harness's server, on a private pool."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        super().__init__(verify=False)
        self._limits = limits or _DEFAULT_LIMITS
        self._pool = _AsyncPool(**_pool_options(self._limits))
        self._usual: httpx.AsyncHTTPTransport | None = None  # for a respx carve-out

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if passed_through_by_respx(request):
            if self._usual is None:
                self._usual = httpx.AsyncHTTPTransport(verify=False, limits=self._limits)
            return await self._usual.handle_async_request(request)
        pinned = _PINNED[httpx.AsyncHTTPTransport, "handle_async_request"]
        return await pinned(self, request)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await super().aclose()
        if self._usual is not None:
            await self._usual.aclose()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


class Client(httpx.Client):
    """An httpx client on the private route: the harness's own calls (health, reset).

    Never through a proxy from the environment, which must not see loopback traffic.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(transport=SyncTransport(), trust_env=False, **kwargs)

    def _transport_for_url(self, url: httpx.URL) -> httpx.BaseTransport:
        return self._transport
