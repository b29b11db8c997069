"""Small HTTP servers on 127.0.0.1 (an ephemeral port) for unit tests: a handler class and
the state it reads, served in a daemon thread for the `with` block."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StatefulServer(ThreadingHTTPServer):
    """A server whose handlers find the test's state at `self.server.state`."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.state = state


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], state: Any = None) -> Iterator[str]:
    """The base URL of `handler` serving on loopback until the block ends."""
    httpd = StatefulServer(handler, state)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
