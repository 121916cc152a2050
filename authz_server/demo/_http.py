"""A loopback HTTP server running in a background thread, shared by the test servers.

Subclasses implement :meth:`LoopbackServer.handle`, called for every request
whatever its method; this module owns binding (always 127.0.0.1), the serving
thread, ``start()``/``stop()`` and the context manager.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from authz_server.demo._process import Started

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class Request(BaseHTTPRequestHandler):
    """One HTTP/1.1 exchange; every ``do_<METHOD>`` goes to the owning server."""

    protocol_version = "HTTP/1.1"
    server: _OwnedHTTPServer

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self.server.owner.handle(self)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("%s " + format, self.server.owner.name, *args)

    @property
    def raw_path(self) -> str:
        """The request target exactly as sent.

        ``self.path`` is not: http.server collapses a leading ``//`` into ``/``.
        """
        return self.requestline.split()[1]

    def read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked); empty if none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";", 1)[0].strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        # skip trailers up to the empty line that ends the message
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def send_body(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _OwnedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows which :class:`LoopbackServer` runs it."""

    def __init__(self, port: int, owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, port), Request)


class LoopbackServer(Started):
    """Serve HTTP on 127.0.0.1 in a daemon thread; subclasses answer requests."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._httpd: _OwnedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The class name, used in thread names and log lines."""
        return type(self).__name__

    @property
    def port(self) -> int:
        """The bound port; only valid after :meth:`start`."""
        if self._httpd is None:
            raise RuntimeError(f"{self.name} is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` without a trailing slash."""
        return f"http://{LOOPBACK}:{self.port}"

    def handle(self, request: Request) -> None:
        """Answer one request; called on the connection's thread."""
        raise NotImplementedError

    def start(self) -> Self:
        """Bind and serve; raise OSError if the port is busy."""
        if self._httpd is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._httpd = _OwnedHTTPServer(self._requested_port, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"{self.name}:{self.port}"
        )
        self._thread.daemon = True
        self._thread.start()
        logger.debug("%s listening on %s", self.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
