"""Envoy's gRPC ext_authz protocol: CheckRequest in, CheckResponse out.

Allowed requests get an ``OkHttpResponse`` whose header mutations overwrite (never
append), so a client's own copy of a header we own cannot survive next to ours.
Denied requests get a ``DeniedHttpResponse`` with the status, a plain-text body
naming the reason, and for 401 a ``WWW-Authenticate: Bearer`` challenge. Every call
returns a CheckResponse: an exception never reaches gRPC, where Envoy might be
configured to fail open.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import (
    attribute_context_pb2,
    external_auth_pb2,
    external_auth_pb2_grpc,
)
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from authz_server.decision import Decision, Identity, PolicyMatch
from authz_server.errors import InternalFault, NotReady
from authz_server.pipeline import decide, denied
from authz_server.request import Request
from authz_server.snapshot import Snapshot

logger = logging.getLogger(__name__)

METADATA_NAMESPACE = "authz_server"
GRPC_CODE_BY_STATUS = {
    200: code_pb2.OK,
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    431: code_pb2.INVALID_ARGUMENT,
}
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
MAX_REALM_PATH = 256


def to_request(check: external_auth_pb2.CheckRequest) -> Request:
    """The attributes of a CheckRequest that decisions use."""
    attributes = check.attributes
    http = attributes.request.http
    raw_lines = http.header_map.headers
    headers = dict(http.headers) if http.headers else _joined(http.header_map)
    destination = attributes.destination
    return Request(
        method=http.method,
        host=http.host,
        raw_path=http.path,
        headers=headers,
        header_lines=_lines(http.header_map) if raw_lines else None,
        scheme=http.scheme or "http",
        source_ip=attributes.source.address.socket_address.address,
        source_principal=attributes.source.principal,
        destination_ip=destination.address.socket_address.address,
        destination_port=_port(destination),
        destination_principal=destination.principal,
        context=dict(attributes.context_extensions),
        sni=attributes.tls_session.sni,
        request_id=decision_id(headers.get("x-request-id", ""), http.id),
    )


def decision_id(request_id: str, stream_id: str = "") -> str:
    """The request's ``x-request-id`` (what the upstream and access logs see),
    else the proxy's stream id, else a new id."""
    return request_id or stream_id or uuid.uuid4().hex


def _port(peer: attribute_context_pb2.AttributeContext.Peer) -> int | None:
    socket = peer.address.socket_address
    return socket.port_value if socket.address else None


def _header_text(header: base_pb2.HeaderValue) -> str:
    return str(header.value or header.raw_value.decode("utf-8", "replace"))


def _lines(header_map: base_pb2.HeaderMap) -> dict[str, tuple[str, ...]]:
    lines: dict[str, list[str]] = {}
    for header in header_map.headers:
        lines.setdefault(header.key.lower(), []).append(_header_text(header))
    return {name: tuple(values) for name, values in lines.items()}


def _joined(header_map: base_pb2.HeaderMap) -> dict[str, str]:
    return {name: ",".join(values) for name, values in _lines(header_map).items()}


def to_response(
    decision: Decision, request: Request
) -> external_auth_pb2.CheckResponse:
    """The CheckResponse for ``decision``."""
    response = external_auth_pb2.CheckResponse()
    response.status.CopyFrom(
        status_pb2.Status(
            code=GRPC_CODE_BY_STATUS.get(decision.status, code_pb2.PERMISSION_DENIED)
        )
    )
    response.dynamic_metadata.CopyFrom(_metadata(decision, request.request_id))
    if decision.allowed:
        _allow(response.ok_response, decision)
    else:
        _deny(response.denied_response, decision, request)
    return response


def _allow(ok: external_auth_pb2.OkHttpResponse, decision: Decision) -> None:
    if decision.identity is not None:
        ok.headers.extend(_header_options(decision.identity, decision.headers.set))
    ok.headers_to_remove.extend(decision.headers.remove)
    ok.query_parameters_to_remove.extend(decision.headers.remove_params)


def _deny(
    denied_response: external_auth_pb2.DeniedHttpResponse,
    decision: Decision,
    request: Request,
) -> None:
    denied_response.status.code = http_status_pb2.StatusCode.Value(
        _status_name(decision.status)
    )
    for name, value in deny_headers(decision, request):
        denied_response.headers.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=OVERWRITE,
            )
        )
    denied_response.body = decision.message


def _status_name(status: int) -> str:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        431: "RequestHeaderFieldsTooLarge",
    }
    return names.get(status, "Forbidden")


def deny_headers(decision: Decision, request: Request) -> list[tuple[str, str]]:
    """The headers of every denial, whatever the protocol: content type, reason
    code, decision id, and for 401 the ``WWW-Authenticate`` challenge."""
    headers = [
        ("content-type", "text/plain"),
        ("x-authz-reason", decision.reason),
        ("x-authz-decision-id", request.request_id),
    ]
    if decision.status == 401:
        headers.append(("www-authenticate", challenge(request)))
    return headers


def challenge(request: Request) -> str:
    """``WWW-Authenticate`` for a rejected token, as Envoy's jwt_authn writes it.

    The realm is the request URL without its query string (which may hold the
    token itself), truncated, with quotes and control characters escaped.
    """
    url = f"{request.scheme}://{request.host}{request.path}"[: MAX_REALM_PATH + 64]
    safe = "".join(
        c if " " <= c < "\x7f" and c not in '"\\' else f"%{ord(c):02X}" for c in url
    )
    return f'Bearer realm="{safe}", error="invalid_token"'


def _metadata(decision: Decision, decision_id: str) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    fields = metadata.fields[METADATA_NAMESPACE].struct_value.fields
    fields["decision_id"].string_value = decision_id
    fields["decision"].string_value = "allow" if decision.allowed else "deny"
    fields["reason"].string_value = decision.reason
    identity = decision.identity
    if identity is not None:
        fields["principal"].string_value = identity.principal
        fields["claims"].struct_value.CopyFrom(_claims_struct(identity))
    if decision.policy is not None:
        fields["policy"].string_value = decision.policy.policy
        fields["rule"].number_value = decision.policy.rule
    if decision.dry_run:
        fields["dry_run"].list_value.extend([_match(m) for m in decision.dry_run])
    if decision.audit:
        fields["audit"].list_value.extend([_match(m) for m in decision.audit])
    return metadata


def _header_options(
    identity: Identity, to_set: tuple[tuple[str, str], ...]
) -> list[base_pb2.HeaderValueOption]:
    """Overwriting header mutations for a verified token, built once per token."""
    cached: list[base_pb2.HeaderValueOption] | None = identity.memo.get("headers")
    if cached is None:
        cached = [
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=OVERWRITE,
            )
            for name, value in to_set
        ]
        identity.memo["headers"] = cached
    return cached


def _claims_struct(identity: Identity) -> struct_pb2.Struct:
    """The verified claims as a Struct, built once per identity; empty if the
    claims hold values a Struct cannot (numbers beyond a double)."""
    cached = identity.memo.get("claims_struct")
    if cached is None:
        cached = struct_pb2.Struct()
        try:
            cached.update(dict(identity.claims))
        except (ValueError, TypeError, OverflowError):
            cached = struct_pb2.Struct()
        identity.memo["claims_struct"] = cached
    return cached


def _match(found: PolicyMatch) -> struct_pb2.Struct:
    entry = struct_pb2.Struct()
    entry.fields["policy"].string_value = found.policy
    entry.fields["rule"].number_value = found.rule
    entry.fields["action"].string_value = found.action
    return entry


OnDecision = Callable[[Request, Decision, float], None]
UNREADABLE = Request(method="", host="", raw_path="/", request_id="unreadable")
"""Stands for a CheckRequest that could not even be read (always denied)."""


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """The ``envoy.service.auth.v3.Authorization`` service."""

    def __init__(
        self, current: Callable[[], Snapshot | None], on_decision: OnDecision
    ) -> None:
        self._current = current
        self._on_decision = on_decision

    def Check(  # noqa: N802 - the gRPC method name
        self, check: external_auth_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        started = time.perf_counter()
        request = UNREADABLE
        try:
            request = to_request(check)
            snapshot = self._current()
            decision = (
                denied(NotReady()) if snapshot is None else decide(snapshot, request)
            )
            response = to_response(decision, request)
        except Exception:
            logger.exception("cannot answer a check")
            decision = denied(InternalFault())
            response = to_response(decision, request)
        self._on_decision(request, decision, time.perf_counter() - started)
        return response
