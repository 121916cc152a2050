"""The admin HTTP listener: probes, metrics and a key-set page.

* ``/healthz``: the process is alive (always 200 while it answers);
* ``/readyz``: 200 when the gRPC health service says SERVING, else 503;
* ``/metrics``: Prometheus text format;
* ``/debug/keys``: per key source its URL, kids, algorithms, key types, fetch times
  and last error. Public key identifiers only: no key material.

Bind it to loopback or a pod-internal address: it is not meant for clients.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from authz_server.authn.jwks import RemoteKeys
from authz_server.authn.keys import KeySet
from authz_server.metrics import Metrics
from authz_server.settings import split_listen

logger = logging.getLogger(__name__)


class AdminListener:
    """Serves the admin endpoints until :meth:`stop`."""

    def __init__(
        self,
        listen: str,
        *,
        ready: Callable[[], bool],
        metrics: Metrics,
        key_sources: Callable[[], list[RemoteKeys]],
        inline_keys: Callable[[], list[tuple[str, KeySet]]],
    ) -> None:
        self._address = split_listen(listen)
        self._routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: (200, "text/plain", b"ok\n"),
            "/readyz": lambda: _readiness(ready()),
            "/metrics": lambda: (
                200,
                CONTENT_TYPE_LATEST,
                generate_latest(metrics.registry),
            ),
            "/debug/keys": lambda: _keys_page(key_sources(), inline_keys()),
        }
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        """Bind and serve in a background thread; return the bound port."""
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
                route = routes.get(self.path.partition("?")[0])
                status, content_type, body = (
                    route() if route else (404, "text/plain", b"not found\n")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # probes every few seconds would flood the log

        self._server = ThreadingHTTPServer(self._address, Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name="admin", daemon=True
        ).start()
        port: int = self._server.server_address[1]
        logger.info(
            "admin listening", extra={"admin_listen": f"{self._address[0]}:{port}"}
        )
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _readiness(ready: bool) -> tuple[int, str, bytes]:
    return (
        (200, "text/plain", b"ready\n")
        if ready
        else (503, "text/plain", b"not ready\n")
    )


def _keys_page(
    sources: list[RemoteKeys], inline: list[tuple[str, KeySet]]
) -> tuple[int, str, bytes]:
    now_wall, now_mono = time.time(), time.monotonic()
    entries: list[dict[str, Any]] = []
    for source in sources:
        age = source.age()
        entries.append(
            {
                "source": source.description,
                "keys": _describe(source.current),
                "fetched_at": None if age is None else _iso(now_wall - age),
                "next_refresh_in_seconds": round(
                    max(0.0, source.next_refresh - now_mono), 1
                ),
                "last_error": source.last_error or None,
            }
        )
    for rule, key_set in inline:
        entries.append({"source": f"inline jwks of {rule}", "keys": _describe(key_set)})
    body = json.dumps({"key_sources": entries}, indent=2).encode()
    return 200, "application/json", body


def _describe(key_set: KeySet | None) -> list[dict[str, Any]]:
    if key_set is None:
        return []
    return [
        {
            "kid": key.kid or None,
            "alg": key.alg or None,
            "kty": key.kty,
            "algorithms": sorted(key.algorithms),
        }
        for key in key_set.keys
    ]


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
