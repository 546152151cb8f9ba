"""Where ``/metrics`` is served and to whom (docs/operations.md, "Metrics").

The metrics name routes, status codes, pool sizes and traffic: useful to an attacker mapping the
service, so production never serves them to anyone who asks (OWASP API Security Top 10 2023, API8
"Security Misconfiguration"):

* ``METRICS_TOKEN`` set: ``GET /metrics`` on the API answers only ``Authorization: Bearer
  <METRICS_TOKEN>`` (RFC 6750), compared in constant time;
* ``METRICS_PORT`` set: ``orbsurv serve`` serves the metrics (every worker's, aggregated) on a
  listener of its own at ``METRICS_HOST:METRICS_PORT`` (default host 127.0.0.1), and the API's
  ``/metrics`` is 404; with both set, that listener also asks for the token;
* production with neither: ``/metrics`` is 404 (the safe default: a forgotten setting hides the
  metrics, never exposes them; ``orbsurv serve`` says so at start);
* development and test with neither: open, as before.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orbsurv.main.settings import Settings

logger = logging.getLogger(__name__)


def metrics_served_by_app(settings: Settings) -> bool:
    """Whether the API itself answers ``GET /metrics`` (otherwise: 404)."""
    if settings.metrics_port is not None:
        return False
    return not settings.is_production or settings.metrics_token is not None


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` (scheme case-insensitive, RFC 6750 section 2.1), the
    token compared in constant time."""
    if not authorization:
        return False
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def _handler(render: Callable[[], bytes], token: str | None) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in {"/metrics", "/"}:
                self._answer(404, b"not found\n", "text/plain; charset=utf-8")
                return
            if token is not None and not bearer_matches(self.headers.get("Authorization"), token):
                self._answer(
                    401,
                    b"the metrics need the METRICS_TOKEN bearer token\n",
                    "text/plain; charset=utf-8",
                    [("WWW-Authenticate", 'Bearer realm="metrics"')],
                )
                return
            self._answer(200, render(), "text/plain; version=0.0.4; charset=utf-8")

        def _answer(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: Iterable[tuple[str, str]] = (),
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the log

    return MetricsHandler


class MetricsListener:
    """A small HTTP server on a thread of its own: ``GET /metrics`` renders ``render()``."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes], token: str | None):
        self._server = ThreadingHTTPServer((host, port), _handler(render, token))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-listener", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
