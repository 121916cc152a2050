"""The outcomes Istio's own tests record for its fixtures (``SOURCES.md``), through
the same pipeline the server runs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from istio_fixtures import GLOBAL_JWT, POLICIES, load, localised, token

from authz_server.decision import Decision
from authz_server.demo.keyserver import KeyServer
from authz_server.errors import ConfigError
from authz_server.pipeline import decide
from authz_server.request import Request
from authz_server.snapshot import Snapshot

HTTPBIN = {"app": "httpbin", "version": "v1"}
GATEWAY = {"istio": "ingressgateway"}


Loader = Callable[..., Snapshot]


@pytest.fixture
def fixture(tmp_path: Path, common_keys: KeyServer, sample_keys: KeyServer) -> Loader:
    def loader(*names: str) -> Snapshot:
        paths = [
            localised(n, tmp_path, common_keys.url, sample_keys.url) for n in names
        ]
        return load(paths)

    return loader


def check(
    snap: Snapshot,
    *,
    bearer: str | None = None,
    path: str = "/",
    method: str = "GET",
    host: str = "httpbin.foo",
    headers: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
) -> Decision:
    all_headers = dict(headers or {})
    if bearer is not None:
        all_headers["authorization"] = f"Bearer {bearer}"
    request = Request(
        method=method,
        host=host,
        raw_path=path,
        headers=all_headers,
        context=HTTPBIN if context is None else context,
    )
    return decide(snap, request)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in POLICIES.glob("*.yaml")), ids=lambda n: n[:-5]
)
def test_every_fixture_loads_or_is_rejected_as_documented(
    fixture: Loader, name: str
) -> None:
    rejected = {
        "builder-allow-full-rule-in.yaml": "is not a condition authz-server supports",
        "builder-custom-simple-http-in.yaml": "CUSTOM sends requests",
        "istio-io-authz-custom.yaml": "CUSTOM sends requests",
        "istio-io-meshconfig-extension-providers.yaml": "is not one of",
    }
    if name in rejected:
        with pytest.raises(ConfigError, match=rejected[name]):
            fixture(name)
    else:
        assert fixture(name).config.files


def test_sample_tokens_verify_and_carry_their_claims(fixture: Loader) -> None:
    snap = fixture("samples-readme-requestauthn.yaml")
    outside = check(snap, bearer="not-a-token", context={"app": "other"})
    assert outside.allowed, "the selector limits the rule to app=httpbin"

    for name in ("demo", "groups-scope"):
        decision = check(snap, bearer=token(name))
        assert decision.allowed and decision.identity is not None
        assert decision.identity.principal == (
            "testing@secure.istio.io/testing@secure.istio.io"
        )
    groups = check(snap, bearer=token("groups-scope")).identity
    assert groups is not None and groups.claims["groups"] == ["group1", "group2"]


def test_authn_only(fixture: Loader) -> None:
    snap = fixture("itest-requestauthn-authn-only.yaml")

    ok = check(snap, bearer=token("TokenIssuer1"))
    assert ok.allowed
    assert dict(ok.headers.set) == {
        "x-test-payload": token("TokenIssuer1").split(".")[1],
        "x-jwt-iss": "test-issuer-1@istio.io",
        "x-jwt-iat": "1562182722",
    }
    assert "authorization" in ok.headers.remove
    assert "x-jwt-nested-claim" in ok.headers.remove

    nested = check(snap, bearer=token("TokenIssuer1WithNestedClaims2"))
    assert dict(nested.headers.set)["x-jwt-nested-claim"] == "valueC"
    assert dict(nested.headers.set)["x-jwt-iat"] == "1604008018"
    assert check(snap, bearer=token("TokenIssuer2")).allowed

    expired = check(snap, bearer=token("TokenExpired"))
    assert (expired.status, expired.message) == (401, "Jwt is expired")
    preflight = {"origin": "https://istio.io", "access-control-request-method": "POST"}
    assert check(
        snap, bearer=token("TokenExpired"), method="OPTIONS", headers=preflight
    ).allowed
    no_origin = {"access-control-request-method": "POST"}
    assert (
        check(
            snap, bearer=token("TokenExpired"), method="OPTIONS", headers=no_origin
        ).status
        == 401
    )
    assert check(snap).allowed


def test_authn_authz(fixture: Loader) -> None:
    snap = fixture("itest-requestauthn-authn-authz.yaml")

    ok = check(snap, bearer=token("TokenIssuer1"))
    assert ok.allowed and "authorization" in ok.headers.remove
    assert check(snap, bearer=token("TokenExpired")).status == 401
    assert check(snap).status == 403


def test_forward_keeps_authorization(fixture: Loader) -> None:
    decision = check(
        fixture("itest-requestauthn-forward.yaml"), bearer=token("TokenIssuer1")
    )

    assert decision.allowed
    assert "authorization" not in decision.headers.remove
    assert "x-test-payload" in dict(decision.headers.set)


def test_audiences_of_merged_rules(fixture: Loader) -> None:
    snap = fixture("itest-requestauthn-aud.yaml")

    no_aud = check(snap, bearer=token("TokenIssuer1"))
    assert (no_aud.status, no_aud.message) == (403, "Audiences in Jwt are not allowed")
    assert check(snap, bearer=token("TokenIssuer1WithAud")).allowed
    assert check(snap, bearer=token("TokenIssuer2")).allowed


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/?token=T1", {}, 200),
        ("/?secondary_token=T1", {}, 200),
        ("/?token_value=T1", {}, 403),
        ("/?token=T1&secondary_token=T1", {}, 200),
        ("/?token=T1&secondary_token=EXPIRED", {}, 401),
        ("/", {"x-jwt-token": "Value T1"}, 200),
        ("/", {"auth-token": "Token T1"}, 200),
        ("/", {"auth-header-param": "Bearer T1"}, 403),
        ("/", {"authorization": "Bearer T1"}, 403),
    ],
)
def test_headers_and_params(
    fixture, path: str, headers: dict[str, str], status: int
) -> None:
    snap = fixture("itest-requestauthn-headers-params.yaml")

    def fill(text: str) -> str:
        return text.replace("EXPIRED", token("TokenExpired")).replace(
            "T1", token("TokenIssuer1")
        )

    decision = check(
        snap, path=fill(path), headers={k: fill(v) for k, v in headers.items()}
    )

    assert decision.status == status, decision


@pytest.mark.parametrize(
    ("host", "path", "name", "status"),
    GLOBAL_JWT,
)
def test_global_jwt_at_the_gateway(
    fixture, host: str, path: str, name: str | None, status: int
) -> None:
    snap = fixture("itest-requestauthn-global-jwt.yaml")
    bearer = token(name) if name else None

    assert (
        check(snap, bearer=bearer, host=host, path=path, context=GATEWAY).status
        == status
    )


@pytest.mark.parametrize(
    ("path", "name", "status"),
    [
        ("/token1", None, 403),
        ("/token1", "TokenIssuer1", 200),
        ("/token1", "TokenIssuer2", 403),
        ("/token2", None, 403),
        ("/token2", "TokenIssuer1", 403),
        ("/token2", "TokenIssuer2", 200),
        ("/token3", "TokenIssuer1", 403),
        ("/token3", "TokenIssuer2", 200),
        ("/tokenAny", "TokenIssuer1", 200),
        ("/tokenAny", "TokenIssuer2", 200),
        ("/tokenAny", None, 403),
        ("/permission", "TokenIssuer1", 403),
        ("/permission", "TokenIssuer2", 403),
        ("/permission", "TokenIssuer2WithSpaceDelimitedPermission", 200),
        ("/scope", "TokenIssuer2WithSpaceDelimitedScope", 200),
        ("/otherscope", "TokenIssuer2WithSpaceDelimitedScope", 403),
        ("/custom-scope-admin", "TokenIssuer2WithCustomScopeSpaceDelimitedScope", 200),
        ("/custom-scope-user", "TokenIssuer2WithCustomScopeSpaceDelimitedScope", 200),
        ("/custom-scope-admin", None, 403),
        ("/custom-scope-user", "TokenIssuer1", 403),
        ("/nested-key1", "TokenIssuer1WithNestedClaims1", 200),
        ("/nested-key1", "TokenIssuer1WithNestedClaims2", 403),
        ("/nested-key2", "TokenIssuer1WithNestedClaims1", 403),
        ("/nested-key2", "TokenIssuer1WithNestedClaims2", 200),
        ("/nested-2-key1", "TokenIssuer1WithNestedClaims1", 200),
        ("/nested-2-key1", "TokenIssuer1WithNestedClaims2", 403),
        ("/nested-non-exist", "TokenIssuer1WithNestedClaims1", 403),
        ("/nested-non-exist", "TokenIssuer1WithNestedClaims2", 403),
        ("/audiences", "TokenIssuer1WithAud", 200),
        ("/audiences", "TokenIssuer1WithAudList", 200),
    ],
)
def test_authz_jwt(fixture: Loader, path: str, name: str | None, status: int) -> None:
    snap = fixture("itest-authz-jwt.yaml")
    bearer = token(name) if name else None

    assert check(snap, bearer=bearer, path=path).status == status


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/allow/admin/", 200),
        ("/allow/admin/temp", 200),
        ("/allow/admin/temp.txt", 200),
        ("/allow/admin/foo/temp.txt", 200),
        ("/allow/admin", 403),
        ("/allow/user/", 403),
        ("/allow/admin?param=value", 403),
        ("/allow", 403),
        ("/foo/buzz/bar/bat.txt", 200),
        ("/foo/buzz/bar/bat.temp.txt", 200),
        ("/foo/buzz/bar/bat/fuzz.txt", 200),
        ("/foo/buzz/bar/bat", 200),
        ("/foo/bar/bat.txt", 403),
        ("/foo//bar/bat.txt", 403),
        ("/store//cart", 200),
        ("/store/foo/cart", 200),
        ("/store/foo/bar/cart", 200),
        ("/store/cart", 403),
    ],
)
def test_path_templating(fixture: Loader, path: str, status: int) -> None:
    assert (
        check(fixture("itest-authz-path-templating.yaml"), path=path).status == status
    )


def test_istio_io_authz_jwt(fixture: Loader) -> None:
    snap = fixture("istio-io-authz-jwt.yaml")
    context = {"app": "httpbin"}

    invalid = check(snap, bearer="invalidToken", context=context)
    assert invalid.status == 401
    assert invalid.message.startswith(
        "Jwt is not in the form of Header.Payload.Signature"
    )
    assert check(snap, bearer=token("demo"), context=context).status == 403
    assert check(snap, bearer=token("groups-scope"), context=context).status == 200
    assert check(snap, context=context).status == 403


def test_istio_io_claim_to_header(fixture: Loader) -> None:
    snap = fixture("istio-io-claim-to-header.yaml")

    decision = check(snap, bearer=token("demo"), context={"app": "httpbin"})

    assert decision.allowed
    assert dict(decision.headers.set)["x-jwt-claim-foo"] == "bar"


def test_istio_io_authz_deny(fixture: Loader) -> None:
    snap = fixture("istio-io-authz-deny.yaml")
    context = {"app": "httpbin"}

    assert (
        check(snap, path="/ip", headers={"x-token": "guest"}, context=context).status
        == 403
    )
    assert (
        check(snap, path="/ip", headers={"x-token": "admin"}, context=context).status
        == 200
    )
    assert (
        check(snap, path="/get", headers={"x-token": "admin"}, context=context).status
        == 403
    )


def test_istio_io_dry_run_is_not_enforced(fixture: Loader) -> None:
    decision = check(
        fixture("istio-io-authz-dry-run.yaml"),
        path="/headers",
        context={"app": "httpbin"},
    )

    assert decision.allowed
    assert [m.action for m in decision.dry_run] == ["DENY"]


def test_builder_fixtures(fixture: Loader) -> None:
    assert (
        check(fixture("builder-allow-nil-rule-in.yaml"), context=HTTPBIN).status == 403
    )
    assert (
        check(fixture("builder-allow-empty-rule-in.yaml"), context=HTTPBIN).status
        == 200
    )
    mix = fixture("builder-dry-run-mix-in.yaml")
    assert check(mix, path="/another", context=HTTPBIN).status == 200
    denied = check(mix, path="/allow", context=HTTPBIN)
    assert denied.status == 403
    assert any(m.action == "ALLOW" for m in denied.dry_run)


def test_payload_header_is_the_segment_as_received(fixture: Loader) -> None:
    raw = token("TokenIssuer1WithAud")
    decision = check(fixture("itest-requestauthn-authn-only.yaml"), bearer=raw)

    segment = dict(decision.headers.set)["x-test-payload"]
    assert segment == raw.split(".")[1] and len(segment) == 123 and "=" not in segment
    assert json.loads(base64.urlsafe_b64decode(segment + "="))["aud"] == "foo"
