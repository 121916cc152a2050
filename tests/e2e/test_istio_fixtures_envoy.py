"""Istio's RequestAuthentication fixtures through real Envoy: the statuses and
upstream headers Istio's integration tests record (fixtures/istio-policies)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Response, Stack
from istio_fixtures import GLOBAL_JWT, localised, token

from authz_server.demo.keyserver import KeyServer

HTTPBIN = "httpbin.foo"
Use = Callable[[str], None]


@pytest.fixture
def use(
    stack: Stack, tmp_path: Path, common_keys: KeyServer, sample_keys: KeyServer
) -> Use:
    def load(name: str) -> None:
        stack.use_config(localised(name, tmp_path, common_keys.url, sample_keys.url))

    return load


def get(
    stack: Stack,
    path: str = "/",
    *,
    bearer: str | None = None,
    host: str = HTTPBIN,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    sent = list(headers or [])
    if bearer is not None:
        sent.append(("Authorization", f"Bearer {bearer}"))
    return stack.request(method, path, sent, host=host)


def test_authn_only(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-authn-only.yaml")
    t1 = token("TokenIssuer1")

    ok = get(stack, bearer=t1)
    assert ok.status == 200
    assert ok.upstream_header("authorization") == []
    assert ok.upstream_header("x-test-payload") == [t1.split(".")[1]]
    assert ok.upstream_header("x-jwt-iss") == ["test-issuer-1@istio.io"]
    assert ok.upstream_header("x-jwt-iat") == ["1562182722"]
    assert ok.upstream_header("x-jwt-nested-claim") == []

    issuer2 = get(stack, bearer=token("TokenIssuer2"))
    assert issuer2.upstream_header("x-test-payload") == [
        token("TokenIssuer2").split(".")[1]
    ]

    nested = get(
        stack,
        bearer=token("TokenIssuer1WithNestedClaims2"),
        headers=[("x-jwt-nested-claim", "spoof")],
    )
    assert nested.upstream_header("x-jwt-nested-claim") == ["valueC"]
    assert nested.upstream_header("x-jwt-iat") == ["1604008018"]

    expired = get(stack, "/headers?x=1", bearer=token("TokenExpired"))
    assert (expired.status, expired.body.decode()) == (401, "Jwt is expired")
    assert expired.header("www-authenticate") == (
        f'Bearer realm="http://{HTTPBIN}/headers", error="invalid_token"'
    )

    preflight = [
        ("Origin", "https://istio.io"),
        ("Access-Control-Request-Method", "POST"),
    ]
    assert (
        get(
            stack, method="OPTIONS", bearer=token("TokenExpired"), headers=preflight
        ).status
        == 200
    )
    no_origin = [("Access-Control-Request-Method", "POST")]
    assert (
        get(
            stack, method="OPTIONS", bearer=token("TokenExpired"), headers=no_origin
        ).status
        == 401
    )
    assert get(stack).status == 200


def test_authn_authz(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-authn-authz.yaml")

    ok = get(stack, bearer=token("TokenIssuer1"))
    assert ok.status == 200 and ok.upstream_header("authorization") == []
    assert get(stack, bearer=token("TokenExpired")).status == 401
    assert get(stack).status == 403


def test_forward(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-forward.yaml")
    t1 = token("TokenIssuer1")

    ok = get(stack, bearer=t1)

    assert ok.status == 200
    assert ok.upstream_header("authorization") == [f"Bearer {t1}"]
    assert ok.upstream_header("x-test-payload") == [t1.split(".")[1]]


def test_aud(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-aud.yaml")

    assert get(stack, bearer=token("TokenIssuer1")).status == 403
    assert get(stack, bearer=token("TokenIssuer1WithAud")).status == 200
    assert get(stack, bearer=token("TokenIssuer2")).status == 200


def test_headers_params(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-headers-params.yaml")
    t1, expired = token("TokenIssuer1"), token("TokenExpired")

    assert get(stack, f"/?token={t1}").status == 200
    assert get(stack, f"/?secondary_token={t1}").status == 200
    assert get(stack, f"/?token_value={t1}").status == 403
    assert get(stack, f"/?token={t1}&secondary_token={t1}").status == 200
    assert get(stack, f"/?token={t1}&secondary_token={expired}").status == 401
    assert get(stack, headers=[("X-Jwt-Token", f"Value {t1}")]).status == 200
    assert get(stack, headers=[("Auth-Token", f"Token {t1}")]).status == 200
    assert get(stack, headers=[("Auth-Header-Param", f"Bearer {t1}")]).status == 403


@pytest.mark.parametrize(
    ("host", "path", "name", "status"),
    GLOBAL_JWT,
)
def test_global_jwt_at_the_gateway(
    stack: Stack, use: Use, host: str, path: str, name: str | None, status: int
) -> None:
    use("itest-requestauthn-global-jwt.yaml")
    bearer = token(name) if name else None

    assert get(stack, path, bearer=bearer, host=host).status == status


def test_selector_scopes_by_route(stack: Stack, use: Use) -> None:
    use("itest-requestauthn-authn-authz.yaml")

    assert get(stack, host=HTTPBIN).status == 403, "route labelled app=httpbin"
    assert get(stack, host="elsewhere.example").status == 200, "no labels: no policy"


AUTHZ_JWT = [
    ("/token1", None, 403),
    ("/token1", "TokenIssuer1", 200),
    ("/token1", "TokenIssuer2", 403),
    ("/token2", "TokenIssuer2", 200),
    ("/token3", "TokenIssuer1", 403),
    ("/token3", "TokenIssuer2", 200),
    ("/tokenAny", None, 403),
    ("/tokenAny", "TokenIssuer2", 200),
    ("/permission", "TokenIssuer2WithSpaceDelimitedPermission", 200),
    ("/scope", "TokenIssuer2WithSpaceDelimitedScope", 200),
    ("/otherscope", "TokenIssuer2WithSpaceDelimitedScope", 403),
    ("/custom-scope-admin", "TokenIssuer2WithCustomScopeSpaceDelimitedScope", 200),
    ("/custom-scope-user", "TokenIssuer1", 403),
    ("/nested-key1", "TokenIssuer1WithNestedClaims1", 200),
    ("/nested-key2", "TokenIssuer1WithNestedClaims1", 403),
    ("/nested-2-key1", "TokenIssuer1WithNestedClaims1", 200),
    ("/nested-non-exist", "TokenIssuer1WithNestedClaims2", 403),
    ("/audiences", "TokenIssuer1WithAudList", 200),
]


def test_authz_jwt(stack: Stack, use: Use) -> None:
    use("itest-authz-jwt.yaml")

    for path, name, status in AUTHZ_JWT:
        bearer = token(name) if name else None
        assert get(stack, path, bearer=bearer).status == status, (path, name)


def test_path_templating(stack: Stack, use: Use) -> None:
    use("itest-authz-path-templating.yaml")
    allowed = ["/allow/admin/", "/allow/admin/foo/temp.txt", "/foo/buzz/bar/bat"]
    allowed += ["/store//cart", "/store/foo/bar/cart"]
    denied = ["/allow/admin", "/allow/admin?param=value", "/foo//bar/bat.txt"]
    denied += ["/store/cart"]

    for path in allowed:
        assert get(stack, path).status == 200, path
    for path in denied:
        assert get(stack, path).status == 403, path


def test_istio_io_tasks(stack: Stack, use: Use) -> None:
    use("istio-io-authz-jwt.yaml")
    assert get(stack, bearer="invalidToken").status == 401
    assert get(stack, bearer=token("demo")).status == 403
    assert get(stack, bearer=token("groups-scope")).status == 200
    assert get(stack).status == 403

    use("istio-io-claim-to-header.yaml")
    claim = get(stack, bearer=token("demo"))
    assert claim.status == 200 and claim.upstream_header("x-jwt-claim-foo") == ["bar"]

    use("istio-io-authz-deny.yaml")
    assert get(stack, "/ip", headers=[("x-token", "guest")]).status == 403
    assert get(stack, "/ip", headers=[("x-token", "admin")]).status == 200
    assert get(stack, "/get", headers=[("x-token", "admin")]).status == 403

    use("istio-io-authz-dry-run.yaml")
    assert get(stack, "/headers").status == 200


def test_builder_fixtures(stack: Stack, use: Use) -> None:
    use("builder-allow-nil-rule-in.yaml")
    assert get(stack).status == 403
    use("builder-allow-empty-rule-in.yaml")
    assert get(stack).status == 200
    use("builder-dry-run-mix-in.yaml")
    assert (get(stack, "/another").status, get(stack, "/allow").status) == (200, 403)
