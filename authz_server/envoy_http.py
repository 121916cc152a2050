"""Envoy's HTTP ext_authz protocol (``http_service``), also spoken by nginx and Traefik.

The proxy sends us a copy of the original request's head; we answer with a plain
HTTP response built from the same :func:`~authz_server.pipeline.decide` as gRPC:

* **allow**: ``200``, one response header per header to set on the upstream
  request, and ``x-envoy-auth-headers-to-remove: a, b`` naming the headers Envoy
  must strip (Envoy's only way for an HTTP authorization service to remove one);
* **deny**: the decision's status and plain-text body, ``x-authz-reason`` and, for
  401, the same ``WWW-Authenticate`` challenge as the gRPC adapter.

Where the original request is described, by proxy:

========  ==============================================  ======================
proxy     method / path                                   host
========  ==============================================  ======================
Envoy     the request line itself (minus ``path_prefix``)  ``Host``
nginx     ``X-Original-Method`` / ``X-Original-URI``       ``Host``
Traefik   ``X-Forwarded-Method`` / ``X-Forwarded-Uri``     ``X-Forwarded-Host``
========  ==============================================  ======================

.. warning::
   Every one of these headers is an ordinary request header a client can send.
   They are only as trustworthy as the proxy that overwrites them: nginx with
   ``proxy_set_header``, Traefik with ``trustForwardHeader: false``, Envoy by
   never forwarding them (``allowed_headers``). With ``original="auto"`` a request
   carrying headers of *both* families, or an incomplete family, is refused (400),
   because a proxy sets a complete family and a client-added copy of the other
   family is the signature of a spoofing attempt. Pin the proxy with
   ``original="envoy"`` / ``"nginx"`` / ``"traefik"`` to ignore the other families
   entirely. The query string cannot be edited over HTTP, so a token sent as
   ``access_token`` reaches the upstream; send tokens in headers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from authz_server import observe
from authz_server.decision import Decision
from authz_server.envoy_grpc import OnDecision, decision_id, deny_headers
from authz_server.errors import BadRequest, InternalFault, NotReady
from authz_server.pipeline import decide, denied
from authz_server.request import Request
from authz_server.settings import split_listen
from authz_server.snapshot import Snapshot

logger = logging.getLogger(__name__)

Original = Literal["auto", "envoy", "nginx", "traefik"]
ORIGINAL_MODES: tuple[Original, ...] = ("auto", "envoy", "nginx", "traefik")

HEADERS_TO_REMOVE = "x-envoy-auth-headers-to-remove"
# method header, path header, host header ("" = the Host header itself)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "nginx": ("x-original-method", "x-original-uri", ""),
    "traefik": ("x-forwarded-method", "x-forwarded-uri", "x-forwarded-host"),
}
# Headers about the check request itself, not the original request.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# nginx turns any auth_request status but 2xx, 401 and 403 into a 500.
NGINX_STATUSES = frozenset({401, 403})
MAX_BODY_BYTES = 64 * 1024
POLL_SECONDS = 0.1  # how soon stop() is noticed
SAFE_HEADER_CHARS = frozenset(map(chr, range(0x20, 0x7F))) | {"\t"}


class OriginalRequestError(Exception):
    """The headers describing the original request are missing or contradictory."""


def to_request(
    method: str,
    target: str,
    header_lines: list[tuple[str, str]],
    *,
    original: Original = "auto",
    path_prefix: str = "",
) -> tuple[Request, str]:
    """The original request described by an HTTP check request, and its family.

    The family is ``"envoy"``, ``"nginx"`` or ``"traefik"``. Raises
    :class:`OriginalRequestError` when the description cannot be trusted.
    """
    lines: dict[str, list[str]] = {}
    for name, value in header_lines:
        lines.setdefault(name.lower(), []).append(value)

    family = _family(lines, original)
    if family == "envoy":
        method_used, target_used = method, _strip_prefix(target, path_prefix)
        host = _single(lines, "host")
        consumed: tuple[str, ...] = ()
    else:
        method_header, path_header, host_header = FAMILIES[family]
        method_used = _single(lines, method_header).upper()
        target_used = _single(lines, path_header)
        host = _single(lines, host_header) if host_header else ""
        host = host or _single(lines, "host")
        consumed = (method_header, path_header, host_header)
    if not method_used or not target_used.startswith("/"):
        raise OriginalRequestError("the original method or path is missing")

    kept = {
        name: tuple(values)
        for name, values in lines.items()
        if name not in HOP_BY_HOP and name not in consumed
    }
    request = Request(
        method=method_used,
        host=host,
        raw_path=target_used,
        headers={name: ",".join(values) for name, values in kept.items()},
        header_lines=kept,
        scheme=_scheme(lines),
        source_ip=_source_ip(lines),
        request_id=decision_id(_single(lines, "x-request-id")),
    )
    return request, family


def _family(lines: Mapping[str, list[str]], original: Original) -> str:
    present: list[str]
    if original != "auto":
        present = [original] if original in FAMILIES else []
    else:
        present = [
            name
            for name, headers in FAMILIES.items()
            if any(header in lines for header in headers[:2])
        ]
    if len(present) > 1:
        raise OriginalRequestError("nginx and Traefik original-request headers mixed")
    if not present:
        return "envoy"
    family = present[0]
    if not all(header in lines for header in FAMILIES[family][:2]):
        raise OriginalRequestError(f"incomplete {family} original-request headers")
    return family


def _single(lines: Mapping[str, list[str]], name: str) -> str:
    values = lines.get(name, [])
    if len(values) > 1:
        raise OriginalRequestError(f"{name} is repeated")
    return values[0].strip() if values else ""


def _strip_prefix(target: str, prefix: str) -> str:
    if not prefix:
        return target
    if not target.startswith(prefix):
        raise OriginalRequestError("the path does not start with the path prefix")
    rest = target[len(prefix) :]
    return rest if rest.startswith("/") else "/" + rest


def _scheme(lines: Mapping[str, list[str]]) -> str:
    forwarded = lines.get("x-forwarded-proto", [""])[-1].strip().lower()
    return forwarded if forwarded in ("http", "https") else "http"


def _source_ip(lines: Mapping[str, list[str]]) -> str:
    """The last ``X-Forwarded-For`` entry (the one the proxy appended), or "".

    Not the TCP peer: that is the proxy, and an ``ipBlocks`` rule written for
    clients must not match the proxy's own (usually internal) address.
    """
    forwarded = ",".join(lines.get("x-forwarded-for", []))
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return ""


def response_for(
    decision: Decision, request: Request, family: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body answering ``decision`` in the HTTP protocol."""
    if decision.allowed:
        headers = list(decision.headers.set)
        if decision.headers.remove:
            headers.append((HEADERS_TO_REMOVE, ",".join(decision.headers.remove)))
        return 200, headers, b""

    status = decision.status
    if family == "nginx" and status not in NGINX_STATUSES:
        status = 403
    return status, deny_headers(decision, request), decision.message.encode("utf-8")


def _safe(headers: list[tuple[str, str]]) -> bool:
    """No CR, LF or other control byte could split the response we write."""
    return all(
        name and set(name) <= SAFE_HEADER_CHARS and set(value) <= SAFE_HEADER_CHARS
        for name, value in headers
    )


class _Handler(BaseHTTPRequestHandler):
    """Every method is a check: ``do_<ANY>`` resolves to :meth:`_check`."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._check
        raise AttributeError(name)

    def _check(self) -> None:
        started = time.perf_counter()
        request = Request(method=self.command, host="", raw_path="/")
        family = "envoy"
        try:
            self._discard_body()
            request, family = self.server.listener.describe(self)
            decision = self.server.listener.decide(request)
        except OriginalRequestError as err:
            decision = denied(BadRequest(f"Bad ext_authz request: {err}"))
        except Exception:
            logger.exception("cannot answer an HTTP check")
            decision = denied(InternalFault())

        status, headers, body = response_for(decision, request, family)
        if not _safe(headers):
            logger.error("refusing to write an unsafe header value")
            decision = denied(InternalFault())
            status, headers, body = response_for(decision, request, family)
        self._write(status, headers, body)
        self.server.listener.on_decision(
            request, decision, time.perf_counter() - started
        )

    def _discard_body(self) -> None:
        # A check needs the head only; a keep-alive connection needs the body read.
        if self.headers.get("transfer-encoding"):
            self.close_connection = True
            return
        length = self.headers.get("content-length", "0").strip()
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
        elif int(length):
            self.rfile.read(int(length))

    def _write(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if self.command == "HEAD":
            body = b""
        # send_response_only: no Server (version) or Date header to leak upstream
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the stdlib access log: every check has its decision line."""


def header_lines(message: Message) -> list[tuple[str, str]]:
    """Each header line of a parsed request head, in order."""
    return [(name, str(value)) for name, value in message.items()]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], listener: HttpAuthzListener):
        self.listener = listener
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS query); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class HttpAuthzListener:
    """An HTTP ext_authz listener answering from the current snapshot.

    ``listen`` is ``HOST:PORT`` (port 0 picks a free one; an IPv6 host goes in
    brackets). ``original`` pins where the original request is described (see the
    module docstring); ``path_prefix`` is Envoy's ``http_service.path_prefix``;
    ``on_decision`` receives every decision (default: the decision log line).
    """

    def __init__(
        self,
        current: Callable[[], Snapshot | None],
        listen: str,
        *,
        original: Original = "auto",
        path_prefix: str = "",
        on_decision: OnDecision = observe.log_decision,
    ) -> None:
        if original not in ORIGINAL_MODES:
            raise ValueError(f"original must be one of {', '.join(ORIGINAL_MODES)}")
        self._current = current
        self.listen = listen
        self.original: Original = original
        self.path_prefix = path_prefix.rstrip("/")
        self.on_decision = on_decision
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def describe(self, handler: BaseHTTPRequestHandler) -> tuple[Request, str]:
        """The original request a handler's check request describes."""
        return to_request(
            handler.command,
            handler.path,
            header_lines(handler.headers),
            original=self.original,
            path_prefix=self.path_prefix,
        )

    def decide(self, request: Request) -> Decision:
        """Decide under the current snapshot (fail closed before the first load)."""
        snapshot = self._current()
        if snapshot is None:
            return denied(NotReady())
        return decide(snapshot, request)

    def start(self) -> int:
        """Bind and serve in a background thread; return the bound port."""
        host, port = split_listen(self.listen)
        server = _Server((host, port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="http-authz",
            daemon=True,
        )
        self._thread.start()
        bound = int(server.server_address[1])
        logger.info("serving HTTP ext_authz", extra={"http_listen": self.listen})
        return bound

    def stop(self) -> None:
        """Stop accepting, close the socket and wait for the serving thread."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
