"""Properties of the Check entry point under random requests and tokens.

Requests are random CheckRequests (methods, paths with escapes, hosts, headers,
token locations); tokens are valid ones, valid ones with one byte changed in one
segment, re-encoded headers, random claims signed by a stranger, and garbage. The
servicer is called in process with the production wiring, under a policy that
requires a principal (and a role), so every property below can fail.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from hypothesis import given
from hypothesis import strategies as st

from authz_server import snapshot, tokens
from authz_server.authn.jwks import KeyRegistry
from authz_server.envoy_grpc import AuthorizationServicer
from authz_server.settings import Settings

ISSUER = "https://fuzz.example.com"
OWNED = ("x-jwt-payload", "x-jwt-role")
KEY = tokens.generate_key("ES256")
STRANGER = tokens.generate_key("ES256")
POLICY = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules:
  - issuer: %(issuer)s
    jwks: '%(jwks)s'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-role, claim: role}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: members, namespace: default}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
    when: [{key: "request.auth.claims[role]", values: [user, admin]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin-path, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
"""


@pytest.fixture(scope="module")
def servicer(tmp_path_factory: pytest.TempPathFactory) -> AuthorizationServicer:
    path = tmp_path_factory.mktemp("fuzz") / "policy.yaml"
    jwks = json.dumps({"keys": [tokens.public_jwk(KEY, "k1")]})
    path.write_text(POLICY % {"issuer": ISSUER, "jwks": jwks})
    built = snapshot.load([str(path)], KeyRegistry(), Settings())
    return AuthorizationServicer(lambda: built, lambda *_: None)


VALID = {
    role: tokens.mint(KEY, "k1", {"iss": ISSUER, "sub": "u", "role": role})
    for role in ("user", "admin", "guest")
}


def _flip(token: str, segment: int, position: int, byte: int) -> str:
    parts = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[segment] + "=" * 3))
    if raw:
        raw[position % len(raw)] ^= byte or 1
    parts[segment] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return ".".join(parts)


def _reencoded_header(token: str, header: dict[str, Any]) -> str:
    _, payload, signature = token.split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
    return f"{encoded.decode()}.{payload}.{signature}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
mutated = st.builds(
    _flip,
    st.sampled_from(list(VALID.values())),
    st.integers(0, 2),
    st.integers(0, 400),
    st.integers(0, 255),
)
reencoded = st.builds(
    _reencoded_header,
    st.sampled_from(list(VALID.values())),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku"]), json_values),
)
strangers = st.builds(
    lambda claims: tokens.mint(STRANGER, "k1", {"iss": ISSUER, **claims}),
    st.dictionaries(st.sampled_from(["sub", "role", "aud", "exp", "nbf"]), json_values),
)
token_strategy = st.one_of(
    st.none(),
    st.sampled_from(list(VALID.values())),
    mutated,
    reencoded,
    strangers,
    st.text(max_size=40),
)
path_text = st.text(
    alphabet=st.sampled_from(list("/abcdmin.%2fFe5C;?#=&_~-")), min_size=0, max_size=24
)
header_names = st.sampled_from(
    ["x-jwt-payload", "X-JWT-ROLE", "x_jwt_role", "cookie", "x-other", "origin"]
)


@st.composite
def check_requests(
    draw: st.DrawFn,
) -> tuple[external_auth_pb2.CheckRequest, str | None]:
    token = draw(token_strategy)
    check = external_auth_pb2.CheckRequest()
    http = check.attributes.request.http
    http.method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "delete", "G\r\nET"]))
    http.host = draw(st.sampled_from(["api", "API:8080", "", "a\nb"]))
    http.path = "/" + draw(path_text)
    for name, value in draw(
        st.dictionaries(header_names, st.text(max_size=20))
    ).items():
        http.headers[name.lower()] = value
    place = draw(st.sampled_from(["header", "query", "lowercase"]))
    if token is not None and place == "header":
        http.headers["authorization"] = f"Bearer {token}"
    elif token is not None and place == "lowercase":
        http.headers["authorization"] = f"bearer {token}"
    elif token is not None:
        http.path += ("&" if "?" in http.path else "?") + f"access_token={token}"
    return check, token


def _outcome(response: external_auth_pb2.CheckResponse) -> tuple[Any, ...]:
    ok = response.ok_response
    headers = sorted((o.header.key, o.header.value) for o in ok.headers)
    return (
        response.status.code,
        response.denied_response.status.code,
        tuple(headers),
        tuple(sorted(ok.headers_to_remove)),
    )


@given(check_requests())
def test_check_never_raises_and_always_answers(
    servicer: AuthorizationServicer,
    drawn: tuple[external_auth_pb2.CheckRequest, str | None],
) -> None:
    response = servicer.Check(drawn[0], None)

    assert response.status.code in (0, 3, 7, 16)
    if response.status.code != 0:
        assert response.denied_response.status.code in (400, 401, 403, 431)


@given(check_requests())
def test_allowed_only_with_an_unmodified_valid_token(
    servicer: AuthorizationServicer,
    drawn: tuple[external_auth_pb2.CheckRequest, str | None],
) -> None:
    check, token = drawn

    response = servicer.Check(check, None)

    if response.status.code == 0:
        assert token in (VALID["user"], VALID["admin"])
        assert not check.attributes.request.http.path.startswith("/admin")


@given(check_requests())
def test_owned_headers_carry_our_value_or_are_removed(
    servicer: AuthorizationServicer,
    drawn: tuple[external_auth_pb2.CheckRequest, str | None],
) -> None:
    response = servicer.Check(drawn[0], None)

    if response.status.code == 0:
        ok = response.ok_response
        set_names = {option.header.key for option in ok.headers}
        removed = set(ok.headers_to_remove)
        assert not set_names & removed
        for name in OWNED:
            assert name in set_names or name in removed
        for option in ok.headers:
            assert option.append_action == option.OVERWRITE_IF_EXISTS_OR_ADD
        for name in drawn[0].attributes.request.http.headers:
            if name.replace("_", "-") in OWNED and name not in set_names:
                assert name in removed


@given(check_requests())
def test_same_request_same_decision(
    servicer: AuthorizationServicer,
    drawn: tuple[external_auth_pb2.CheckRequest, str | None],
) -> None:
    first = servicer.Check(drawn[0], None)
    second = servicer.Check(drawn[0], None)

    assert _outcome(first) == _outcome(second)
