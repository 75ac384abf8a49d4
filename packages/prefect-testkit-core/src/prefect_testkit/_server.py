"""Entry point of the harness's server child: ``python -m prefect_testkit._server``.

The parent hands over three things through the environment: the file descriptor of
an already bound listening socket (so the port is never free between choice and
use), the read end of a pipe whose write end only the parent holds (EOF means the
parent is gone, however it died), and a nonce that every response carries so the
parent can tell our server from any other one.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

from prefect_testkit._protocol import (
    IDENTITY_HEADER,
    LISTEN_FD_ENV,
    NONCE_ENV,
    PARENT_PIPE_FD_ENV,
)

# After the parent dies, uvicorn gets this long to shut down before a hard exit.
_ORPHAN_GRACE_SECONDS = 3.0


def _exit_when_parent_dies(pipe_fd: int) -> None:
    def watch() -> None:
        while os.read(pipe_fd, 1):  # only EOF matters: the parent never writes
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_ORPHAN_GRACE_SECONDS)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class _IdentifyingApp:
    """ASGI wrapper that stamps every HTTP response with the harness's nonce."""

    def __init__(self, app: Any, nonce: str) -> None:
        self._app = app
        self._header = (IDENTITY_HEADER.encode(), nonce.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_stamped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self._app(scope, receive, send_stamped)


def main() -> None:
    listen_fd = int(os.environ.pop(LISTEN_FD_ENV))
    nonce = os.environ.pop(NONCE_ENV)
    _exit_when_parent_dies(int(os.environ.pop(PARENT_PIPE_FD_ENV)))

    # Imported after the watchdog is running: importing the server takes seconds.
    import uvicorn
    from prefect.server.api.server import create_app

    listener = socket.socket(fileno=listen_fd)
    app = _IdentifyingApp(create_app(ephemeral=True, final=True), nonce)
    config = uvicorn.Config(app, log_level="error", lifespan="on", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
