"""The same tokens through three proxies give the same outcomes.

One authz-server (demo policy) answers Envoy over gRPC, Envoy over HTTP
(``http_service``) and nginx (``auth_request``). For every case the gRPC answer is
the reference: status, reason header, challenge, whether the upstream was reached,
and what the upstream received (the role header set, the token and every client
copy of the headers authz-server owns removed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from deploy_stack import Proxies
from harness import send_request

from authz_server import tokens
from authz_server.demo.run import AUDIENCE, ISSUER, KID

PROXIES = ("grpc", "http", "nginx")
ADMIN = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "role": "admin"}


@dataclass(frozen=True)
class Case:
    """One request: a token (by recipe) and extra client headers."""

    token: str | None
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def mint(proxies: Proxies, recipe: str) -> str:
    """A token made for ``recipe``, minted now with the stack's key."""
    now = time.time()
    if recipe == "junk":
        return "not-a-token"
    if recipe == "forged":
        return tokens.mint(tokens.generate_key("RS256"), KID, ADMIN, now=now)
    claims: dict[str, Any] = dict(ADMIN)
    lifetime = 600.0
    if recipe == "guest":
        claims.update(sub="bob", role="guest")
    elif recipe == "no-role":
        del claims["role"]
    elif recipe == "other-audience":
        claims["aud"] = "another-api"
    elif recipe == "other-issuer":
        claims["iss"] = "https://elsewhere.example"
    elif recipe == "expired":
        now -= 3 * lifetime
    return tokens.mint(proxies.key, KID, claims, expires_in=lifetime, now=now)


CASES = {
    "admin": Case("admin", 200),
    "guest": Case("guest", 403, "rbac_access_denied"),
    "no-token": Case(None, 403, "rbac_access_denied"),
    "expired": Case("expired", 401, "jwt_expired"),
    "junk": Case("junk", 401, "jwt_malformed"),
    "forged": Case("forged", 401, "jwt_verification_fails"),
    "other-audience": Case("other-audience", 403, "jwt_audience_not_allowed"),
    "other-issuer": Case("other-issuer", 401, "jwt_issuer_not_configured"),
    "no-role-claiming-admin-by-header": Case(
        "no-role", 403, "rbac_access_denied", (("X-Jwt-Role", "admin"),)
    ),
    "admin-with-smuggled-headers": Case(
        "admin",
        200,
        headers=(
            ("X-Jwt-Role", "superuser"),
            ("X-Jwt-Payload", "e30"),
            ("x_jwt_role", "superuser"),
        ),
    ),
    "admin-with-spoofed-original-request": Case(
        "admin",
        200,
        headers=(
            ("X-Original-URI", "/elsewhere"),
            ("X-Original-Method", "DELETE"),
            ("X-Forwarded-Uri", "/elsewhere"),
            ("X-Forwarded-Method", "DELETE"),
        ),
    ),
}


@dataclass(frozen=True)
class Outcome:
    """What the client and the upstream saw, in comparable form."""

    status: int
    reason: str | None
    challenge: bool
    reached: bool
    upstream_role: tuple[str, ...]
    upstream_payload: bool
    upstream_token: bool
    upstream_lookalike: bool


def send(proxies: Proxies, proxy: str, case: Case) -> Outcome:
    if proxy in proxies.skipped:
        pytest.skip(proxies.skipped[proxy])
    headers = list(case.headers)
    if case.token is not None:
        headers.append(("Authorization", f"Bearer {mint(proxies, case.token)}"))
    proxies.echo.clear()

    status, reply, _ = send_request(proxies.ports[proxy], "GET", "/hello?x=1", headers)

    found = {name.lower(): value for name, value in reply}
    records = proxies.echo.requests
    seen: dict[str, list[str]] = records[-1]["headers"] if records else {}
    return Outcome(
        status=status,
        reason=found.get("x-authz-reason") or None,
        challenge="www-authenticate" in found,
        reached=bool(records),
        upstream_role=tuple(seen.get("x-jwt-role", [])),
        upstream_payload=bool(seen.get("x-jwt-payload")),
        upstream_token="authorization" in seen,
        upstream_lookalike="x_jwt_role" in seen,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_grpc_path_gives_the_expected_outcome(proxies: Proxies, name: str) -> None:
    case = CASES[name]

    outcome = send(proxies, "grpc", case)

    assert outcome.status == case.status
    assert outcome.reason == case.reason
    assert outcome.challenge == (case.status == 401)
    assert outcome.reached == (case.status == 200)
    if outcome.reached:
        assert outcome.upstream_role == ("admin",)
        assert outcome.upstream_payload
        assert not outcome.upstream_token
        assert not outcome.upstream_lookalike


@pytest.mark.parametrize("proxy", ["http", "nginx"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_http_ext_authz_matches_grpc(proxies: Proxies, proxy: str, name: str) -> None:
    case = CASES[name]
    reference = send(proxies, "grpc", case)

    outcome = send(proxies, proxy, case)

    assert outcome == reference


def test_nginx_www_authenticate_is_the_grpc_challenge(proxies: Proxies) -> None:
    expired = mint(proxies, "expired")
    challenges = {}
    for proxy in PROXIES:
        if proxy in proxies.skipped:
            pytest.skip(proxies.skipped[proxy])
        _, reply, _ = send_request(
            proxies.ports[proxy],
            "GET",
            "/hello?access_token=secret",
            [("Host", "api.example"), ("Authorization", f"Bearer {expired}")],
        )
        challenges[proxy] = dict((k.lower(), v) for k, v in reply)["www-authenticate"]

    assert set(challenges.values()) == {
        'Bearer realm="http://api.example/hello", error="invalid_token"'
    }


def test_http_deny_body_is_the_reason_text(proxies: Proxies) -> None:
    status, reply, body = send_request(proxies.ports["http"], "GET", "/hello")
    grpc_status, _, grpc_body = send_request(proxies.ports["grpc"], "GET", "/hello")

    assert (status, body) == (grpc_status, grpc_body) == (403, b"RBAC: access denied")
    assert dict((k.lower(), v) for k, v in reply)["content-type"] == "text/plain"
