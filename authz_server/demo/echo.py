"""An upstream that answers every request with a JSON echo of what it received.

The demo and the tests put it behind Envoy to see exactly what reached the
upstream (which headers authz-server added or removed) and, for a denied
request, that nothing reached it at all::

    with EchoUpstream() as echo:
        ...  # send requests to Envoy, whose "echo" cluster points at echo.port
        assert echo.requests[-1]["headers"]["x-jwt-role"] == ["admin"]

Each record, and each response body, is ``{"method": str, "path": str,
"headers": {lower-case name: [value, ...]}, "body": str}``. The path is the raw
request target, and a header sent twice appears as two list entries in order.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from authz_server.demo._http import LoopbackServer, Request

logger = logging.getLogger(__name__)

EchoRecord = dict[str, Any]


def _headers_of(request: Request) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


class EchoUpstream(LoopbackServer):
    """Echo every request as JSON and keep a thread-safe list of them."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._lock = threading.Lock()
        self._requests: list[EchoRecord] = []

    @property
    def requests(self) -> list[EchoRecord]:
        """A copy of the records received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget the records received so far."""
        with self._lock:
            self._requests.clear()

    def handle(self, request: Request) -> None:
        record: EchoRecord = {
            "method": request.command,
            "path": request.raw_path,
            "headers": _headers_of(request),
            "body": request.read_body().decode("utf-8", "replace"),
        }
        with self._lock:
            self._requests.append(record)
        body = json.dumps(record, indent=2).encode() + b"\n"
        request.send_body(200, body, {"Content-Type": "application/json"})
