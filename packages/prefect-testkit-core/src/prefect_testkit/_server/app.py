"""Entry point of the harness's server child: ``python -m prefect_testkit._server``.

The parent hands over three things through the environment: the file descriptor of
an already bound listening socket (so the port is never free between choice and
use), the read end of a pipe whose write end only the parent holds (EOF means the
parent is gone, however it died), and a nonce that every response carries so the
parent can tell our server from any other one.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from prefect_testkit._server.protocol import (
    FLUSH_PATH,
    IDENTITY_HEADER,
    LISTEN_FD_ENV,
    NONCE_ENV,
    PARENT_PIPE_FD_ENV,
    RESET_PATH,
    STACK_DUMP_END,
    STACK_DUMP_SIGNAL,
)
from prefect_testkit._server.reset import empty_database, wait_for_quiet_message_bus
from prefect_testkit.config import SQLITE_IMMEDIATE_ENV, env_flag

# After the parent dies, uvicorn gets this long to shut down before a hard exit.
_ORPHAN_GRACE_SECONDS = 3.0


def _dump_stacks_on_signal() -> None:
    """Make `STACK_DUMP_SIGNAL` write the server's stacks to stderr (the server log).

    faulthandler writes every thread's stack from C, inside the signal handler, so it
    works however the server is stuck: in an import, on a lock, in a blocking call.
    A request handler that awaits forever leaves no trace there (its thread is idle
    in the event loop), so the chained Python handler adds each asyncio task's await
    chain, and the end marker; it runs only once the main thread runs Python again,
    which a blocking C call can delay forever (the harness then stops waiting).
    """
    # The Python handler first: faulthandler chains to whatever handler it replaces.
    signal.signal(STACK_DUMP_SIGNAL, _dump_tasks)
    faulthandler.register(STACK_DUMP_SIGNAL, file=sys.stderr, all_threads=True, chain=True)


def _dump_tasks(signum: int, frame: FrameType | None) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        lines = ["No asyncio event loop runs in the main thread."]
    else:
        lines = _task_stacks(asyncio.all_tasks(loop))
    print("\n".join([*lines, STACK_DUMP_END]), file=sys.stderr, flush=True)


def _task_stacks(tasks: Iterable[asyncio.Task[Any]]) -> list[str]:
    """Each distinct await chain once, under the names of the tasks waiting in it.

    A hung route collects one identical chain per retried request, and Prefect's
    services run many identical consumer loops: listed one by one they bury the
    chain that matters.
    """
    names: dict[tuple[str, ...], list[str]] = {}
    for task in tasks:
        names.setdefault(tuple(_await_chain(task)), []).append(task.get_name())
    return [
        line
        for chain, tasks_here in names.items()
        for line in (f"Task {', '.join(tasks_here)} (most recent call last):", *chain)
    ]


def _await_chain(task: asyncio.Task[Any]) -> Iterator[str]:
    """The task's await chain, outermost coroutine first, as traceback lines."""
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            yield f'  File "{code.co_filename}", line {frame.f_lineno} in {code.co_name}'
        # Futures and other awaitables end the chain: they have neither attribute.
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def _exit_when_parent_dies(pipe_fd: int) -> None:
    def watch() -> None:
        while os.read(pipe_fd, 1):  # only EOF matters: the parent never writes
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_ORPHAN_GRACE_SECONDS)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# Routes for the harness alone (they check the nonce), answered before Prefect's app.
_ROUTES = {RESET_PATH: empty_database, FLUSH_PATH: wait_for_quiet_message_bus}


class _TestkitApp:
    """ASGI wrapper: stamps every response with the nonce and serves the reset route.

    The reset route answers only requests that carry the nonce, so nothing but the
    harness that started this server can empty its database.
    """

    def __init__(self, app: Any, nonce: str) -> None:
        self._app = app
        self._header = (IDENTITY_HEADER.encode(), nonce.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] in _ROUTES and scope["method"] == "POST":
            await self._serve_route(scope, send)
            return

        async def send_stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self._app(scope, receive, send_stamped)

    async def _serve_route(self, scope: Any, send: Any) -> None:
        body: dict[str, object]
        name, nonce = self._header
        if dict(scope["headers"]).get(name) != nonce:
            status, body = 403, {"error": "this route needs the harness's nonce"}
        else:
            started = time.perf_counter()
            await _ROUTES[scope["path"]]()
            status, body = 200, {"seconds": time.perf_counter() - started}
        headers = [(b"content-type", b"application/json"), self._header]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def serve(listen_fd: int, parent_pipe_fd: int, nonce: str) -> None:
    """Serve Prefect's API on an inherited socket until SIGTERM or the parent's death."""
    # First, before anything that can hang: whether spawned (only this module's light
    # imports ran before) or forked by the factory (which never installs it itself).
    _dump_stacks_on_signal()
    _exit_when_parent_dies(parent_pipe_fd)
    os.umask(0o077)  # the database, its journals and everything else: owner only

    # Imported after the watchdog is running: importing the server takes seconds.
    import uvicorn

    from prefect_testkit._prefect import begin_sqlite_transactions_immediate, create_server_app

    if env_flag(SQLITE_IMMEDIATE_ENV, default=True):
        begin_sqlite_transactions_immediate()
    listener = socket.socket(fileno=listen_fd)
    app = _TestkitApp(create_server_app(), nonce)
    config = uvicorn.Config(app, log_level="error", lifespan="on", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[listener])


def main() -> None:
    serve(
        int(os.environ.pop(LISTEN_FD_ENV)),
        int(os.environ.pop(PARENT_PIPE_FD_ENV)),
        os.environ.pop(NONCE_ENV),
    )


if __name__ == "__main__":
    main()
