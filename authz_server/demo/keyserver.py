"""A JWKS and OpenID discovery server that tests can steer.

Routes (everything else is 404):

* ``/jwks.json``: the key set set by :meth:`KeyServer.set_jwks`, answered with
  the status of :meth:`~KeyServer.set_status`, after the delay of
  :meth:`~KeyServer.set_delay`, with the extra headers of
  :meth:`~KeyServer.set_headers`; every request counts in :attr:`~KeyServer.hits`.
* ``/.well-known/openid-configuration``: ``{"issuer": issuer_url, "jwks_uri": url}``,
  always 200 and not counted.

All controls are thread-safe and take effect on the next request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from authz_server.demo._http import LoopbackServer, Request

logger = logging.getLogger(__name__)

JWKS_PATH = "/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


class KeyServer(LoopbackServer):
    """Serve a JWKS and a discovery document on 127.0.0.1."""

    def __init__(
        self, port: int = 0, jwks: dict[str, Any] | bytes | None = None
    ) -> None:
        super().__init__(port)
        self._lock = threading.Lock()
        self._jwks = b'{"keys": []}'
        self._status = 200
        self._delay_seconds = 0.0
        self._headers: dict[str, str] = {}
        self._hits = 0
        if jwks is not None:
            self.set_jwks(jwks)

    @property
    def url(self) -> str:
        """The JWKS URL, for ``jwksUri``."""
        return self.base_url + JWKS_PATH

    @property
    def issuer_url(self) -> str:
        """The base URL, which the discovery document names as its issuer."""
        return self.base_url

    @property
    def hits(self) -> int:
        """How many requests reached the JWKS path."""
        with self._lock:
            return self._hits

    def reset_hits(self) -> None:
        """Set :attr:`hits` back to zero."""
        with self._lock:
            self._hits = 0

    def set_jwks(self, jwks: dict[str, Any] | bytes) -> None:
        """Serve this key set: a dict is JSON-encoded, bytes are sent verbatim."""
        body = jwks if isinstance(jwks, bytes) else json.dumps(jwks).encode()
        with self._lock:
            self._jwks = body

    def set_status(self, status: int) -> None:
        """Answer the JWKS path with this HTTP status (the body is unchanged)."""
        with self._lock:
            self._status = status

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering the JWKS path."""
        with self._lock:
            self._delay_seconds = seconds

    def set_headers(self, headers: dict[str, str]) -> None:
        """Add these headers (e.g. Cache-Control) to JWKS responses."""
        with self._lock:
            self._headers = dict(headers)

    def handle(self, request: Request) -> None:
        request.read_body()
        path = request.raw_path.split("?", 1)[0]
        if path == JWKS_PATH:
            self._answer_jwks(request)
        elif path == DISCOVERY_PATH:
            self._answer_discovery(request)
        else:
            request.send_body(404, b"not found\n", {"Content-Type": "text/plain"})

    def _answer_jwks(self, request: Request) -> None:
        with self._lock:
            self._hits += 1
            status, delay, body = self._status, self._delay_seconds, self._jwks
            headers = {"Content-Type": "application/json", **self._headers}
        if delay > 0:
            time.sleep(delay)
        request.send_body(status, body, headers)

    def _answer_discovery(self, request: Request) -> None:
        document = {"issuer": self.issuer_url, "jwks_uri": self.url}
        body = json.dumps(document).encode()
        request.send_body(200, body, {"Content-Type": "application/json"})
