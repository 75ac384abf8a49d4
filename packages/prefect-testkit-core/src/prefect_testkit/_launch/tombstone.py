"""What answers on a dead server's port: every request fails at once, saying why.

Without it, a client of a server that died mid-test either gets "connection refused"
with no reason, or, for a request in flight, retries with back-off for about a minute.
The harness still holds the port's lease, so it can bind the port again and answer
each request with HTTP 500 (which Prefect's client does not retry) and a body that
names the exit code and the end of the server's log.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Tombstone:
    def __init__(self, port: int, message: str) -> None:
        body = json.dumps({"detail": message, "exception_message": message}).encode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"tombstone-{port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
