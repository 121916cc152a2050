"""Real Check calls for the field and security suites.

:class:`Authz` runs an in-process :class:`~authz_server.server.Server` on 127.0.0.1
and calls it over real gRPC; :meth:`Authz.load` swaps the config (YAML documents
built with :func:`request_authentication` and :func:`policy`). Every response goes
through :class:`Result`, which asserts the invariants every answer must keep (an
allow never both sets and removes a header, and never appends). :func:`forge` builds
tokens by hand for headers and signatures a library would refuse to produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format
from jwt.algorithms import get_default_algorithms

from authz_server.server import Server
from authz_server.settings import Settings

IDP = "https://idp.example.com"
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
GRPC_OK, GRPC_PERMISSION_DENIED, GRPC_UNAUTHENTICATED = 0, 7, 16
Json = dict[str, Any]


def b64(data: bytes | str) -> str:
    """Unpadded base64url, as JWS segments are written."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: Json | bytes | str) -> str:
    """A JWS segment: dicts as compact JSON, bytes and text as they are."""
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"))
    return b64(value)


def forge(
    header: Json | bytes | str,
    payload: Json | bytes | str,
    key: Any = None,
    *,
    alg: str | None = None,
    signature: bytes | None = None,
) -> str:
    """A compact token: signed with ``key`` (as ``alg``, else ``header["alg"]``),
    or carrying ``signature`` as given (empty when neither is given)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    if signature is None and key is not None:
        name = alg or (header["alg"] if isinstance(header, dict) else "RS256")
        signature = get_default_algorithms()[name].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature or b'')}"


def hmac_token(header: Json, payload: Json, secret: bytes) -> str:
    """A token MAC'd with ``secret`` whatever it looks like (PyJWT refuses PEMs)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}
    signing_input = f"{segment(header)}.{segment(payload)}"
    mac = hmac.new(
        secret, signing_input.encode(), digest.get(header["alg"], hashlib.sha512)
    )
    return f"{signing_input}.{b64(mac.digest())}"


def request_authentication(
    *rules: Json, name: str = "jwt", namespace: str = "default"
) -> Json:
    """A RequestAuthentication with ``rules`` as its jwtRules."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"jwtRules": list(rules)},
    }


def policy(action: str, *rules: Json, name: str = "") -> Json:
    """An AuthorizationPolicy with ``action`` and ``rules``."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name or action.lower(), "namespace": "default"},
        "spec": {"action": action, "rules": list(rules)},
    }


REQUIRE_PRINCIPAL = policy(
    "ALLOW", {"from": [{"source": {"requestPrincipals": ["*"]}}]}
)


def check_request(
    path: str = "/",
    *,
    method: str = "GET",
    host: str = "api.example.com",
    headers: Mapping[str, str] | None = None,
    header_lines: Sequence[tuple[str, str | bytes]] | None = None,
    source_ip: str = "203.0.113.7",
    sni: str = "",
) -> external_auth_pb2.CheckRequest:
    """A CheckRequest as Envoy sends it: ``headers`` is the comma-joined map;
    ``header_lines`` fills ``header_map`` instead (``encode_raw_headers``)."""
    check = external_auth_pb2.CheckRequest()
    attributes = check.attributes
    attributes.source.address.socket_address.address = source_ip
    attributes.source.address.socket_address.port_value = 40000
    attributes.destination.address.socket_address.address = "10.0.0.2"
    attributes.destination.address.socket_address.port_value = 8080
    if sni:
        attributes.tls_session.sni = sni
    http = attributes.request.http
    http.method, http.host, http.path, http.scheme = method, host, path, "https"
    http.protocol = "HTTP/1.1"
    for name, value in (headers or {}).items():
        http.headers[name] = value
    for name, line in header_lines or ():
        entry = http.header_map.headers.add(key=name)
        if isinstance(line, bytes):
            entry.raw_value = line
        else:
            entry.value = line
    return check


@dataclass(frozen=True)
class Result:
    """One CheckResponse, read the way Envoy reads it."""

    response: external_auth_pb2.CheckResponse

    def __post_init__(self) -> None:
        set_names = {name.lower() for name in self.headers_set}
        assert not set_names & {name.lower() for name in self.removed}
        for option in self.response.ok_response.headers:
            assert option.append_action == OVERWRITE
            assert not option.HasField("append") or not option.append.value
        if not self.allowed:
            assert self.status in (400, 401, 403, 431)

    def __repr__(self) -> str:
        return f"Result({self.status} {self.reason} principal={self.principal})"

    @property
    def allowed(self) -> bool:
        return self.response.status.code == GRPC_OK

    @property
    def grpc_code(self) -> int:
        return int(self.response.status.code)

    @property
    def status(self) -> int:
        if self.allowed:
            return 200
        return int(self.response.denied_response.status.code)

    @property
    def headers_set(self) -> dict[str, str]:
        """Upstream request headers the allow sets (overwriting)."""
        ok = self.response.ok_response
        return {option.header.key: option.header.value for option in ok.headers}

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(self.response.ok_response.headers_to_remove)

    @property
    def params_removed(self) -> tuple[str, ...]:
        return tuple(self.response.ok_response.query_parameters_to_remove)

    @property
    def body(self) -> str:
        return str(self.response.denied_response.body)

    def deny_header(self, name: str) -> str | None:
        """A header of the denied response, or None."""
        for option in self.response.denied_response.headers:
            if option.header.key.lower() == name:
                return str(option.header.value)
        return None

    @property
    def reason(self) -> str:
        return str(self.metadata.get("reason", ""))

    @property
    def metadata(self) -> Json:
        data = json_format.MessageToDict(self.response.dynamic_metadata)
        found: Json = data.get("authz_server", {})
        return found

    @property
    def principal(self) -> str | None:
        value = self.metadata.get("principal")
        return None if value is None else str(value)

    def text(self) -> str:
        """Everything the client or upstream could see, for leak checks."""
        return str(self.response)


def assert_unauthenticated(result: Result, *secrets: str) -> None:
    """DENY-401: the challenge, and no token or claim echoed back."""
    assert (result.status, result.grpc_code) == (401, GRPC_UNAUTHENTICATED), result
    challenge = result.deny_header("www-authenticate") or ""
    assert challenge.startswith('Bearer realm="')
    assert challenge.endswith('error="invalid_token"')
    for secret in secrets:
        assert secret not in result.text()


def assert_forbidden(result: Result) -> None:
    assert (result.status, result.grpc_code) == (403, GRPC_PERMISSION_DENIED), result
    assert result.deny_header("www-authenticate") is None


def assert_anonymous(result: Result) -> None:
    """Allowed without identity: nothing set, the payload header stripped."""
    assert result.allowed, result
    assert result.principal is None
    assert result.headers_set == {}


class Authz:
    """An in-process authz-server on 127.0.0.1 with a gRPC client."""

    _files = itertools.count(1)

    def __init__(self, directory: Path, settings: Settings | None = None) -> None:
        self.directory = directory
        self.server = Server(grpc_listen="127.0.0.1:0", settings=settings)
        self._channel: grpc.Channel | None = None
        self._stub: external_auth_pb2_grpc.AuthorizationStub | None = None

    def __enter__(self) -> Self:
        port = self.server.start()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = external_auth_pb2_grpc.AuthorizationStub(self._channel)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._channel is not None:
            self._channel.close()
        self.server.stop(grace=0)

    def write(self, *documents: Json) -> Path:
        path = self.directory / f"config-{next(self._files)}.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        return path

    def load(self, *documents: Json) -> None:
        """Serve exactly ``documents`` from now on (raise ConfigError if bad)."""
        self.server.load([str(self.write(*documents))])

    def send(self, check: external_auth_pb2.CheckRequest) -> Result:
        assert self._stub is not None, "use Authz as a context manager"
        return Result(self._stub.Check(check, timeout=30))

    def check(self, path: str = "/", **request: Any) -> Result:
        """Build a CheckRequest (see :func:`check_request`) and send it."""
        return self.send(check_request(path, **request))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
