"""A tiny HTTP server for the sandbox's own tests and demos (`python -m sandbox.echo_server`).

GET /         -> 200 "<pod name>\\n"
GET /healthz  -> 503 until --ready-after seconds have passed, then 200 (unless failed below)
GET /fail     -> /healthz answers 503 from now on (a readiness probe starts failing)
GET /recover  -> /healthz answers 200 again
GET /prestop  -> logs "preStop hook called" (for a preStop httpGet hook)
GET /metrics  -> Prometheus text format (a request counter)
On SIGTERM it prints "SIGTERM received" and exits 0 after --drain seconds, or, with
--ignore-sigterm, keeps serving until it is killed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default=os.environ.get("POD_IP", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--drain", type=float, default=0.0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    name = os.environ.get("POD_NAME", "echo")
    requests = {"count": 0}
    failed = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests["count"] += 1
            if self.path == "/healthz":
                ready = time.monotonic() - started >= args.ready_after and not failed.is_set()
                self._send(200 if ready else 503, b"ok\n" if ready else b"not ready\n")
            elif self.path in ("/fail", "/recover"):
                if self.path == "/fail":
                    failed.set()
                else:
                    failed.clear()
                self._send(200, f"{self.path[1:]}ed\n".encode())
            elif self.path == "/prestop":
                print("preStop hook called", flush=True)
                self._send(200, b"ok\n")
            elif self.path == "/metrics":
                body = (
                    "# HELP echo_requests_total Requests served.\n"
                    "# TYPE echo_requests_total counter\n"
                    f"echo_requests_total {requests['count']}\n"
                ).encode()
                self._send(200, body, "text/plain; version=0.0.4")
            else:
                self._send(200, f"{name}\n".encode())

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *fmt_args: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def on_term(_signum: int, _frame: object) -> None:
        print("SIGTERM received" + (" (ignored)" if args.ignore_sigterm else ""), flush=True)
        if args.ignore_sigterm:
            return

        def stop() -> None:
            time.sleep(args.drain)
            server.shutdown()

        threading.Thread(target=stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"serving on {args.host}:{args.port}", flush=True)
    server.serve_forever()
    print("exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
