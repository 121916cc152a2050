"""The main job through real Envoy: verify the JWT, forward claims as headers.

Envoy's ext_authz filter calls the in-process authz-server over gRPC; a JWKS
server on loopback serves the keys by ``jwksUri``; the echo upstream reports what
reached it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from harness import TEST_KID, Response, Stack

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.errors import TokenMalformed

ISSUER = "https://idp.example.com"
OTHER = "https://other.example.com"


def config(url: str, **rule: Any) -> str:
    fields = {
        "issuer": ISSUER,
        "audiences": ["api.example.com"],
        "jwksUri": url,
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [
            {"header": "x-jwt-sub", "claim": "sub"},
            {"header": "x-jwt-role", "claim": "role"},
            {"header": "x-jwt-tenant", "claim": "org.tenant"},
        ],
        **rule,
    }
    return json.dumps(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": "jwt", "namespace": "default"},
            "spec": {"jwtRules": [fields]},
        }
    )


def mint(key: tokens.PrivateKey, **claims: Any) -> str:
    base = {"iss": ISSUER, "sub": "user-1", "aud": "api.example.com", "role": "admin"}
    return tokens.mint(key, TEST_KID, {**base, **claims})


def auth(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def assert_challenge(response: Response, message: str) -> None:
    assert response.status == 401
    assert response.upstream is None
    assert response.body.decode() == message
    challenge = response.header("www-authenticate") or ""
    assert challenge.startswith('Bearer realm="http://')
    assert challenge.endswith(', error="invalid_token"')


@pytest.fixture
def loaded(stack: Stack, key_server: KeyServer) -> Stack:
    stack.use_config(config(key_server.url))
    return stack


def test_valid_token_reaches_upstream_with_payload_and_claims(
    loaded: Stack, signing_key: tokens.PrivateKey
) -> None:
    token = mint(signing_key, org={"tenant": "acme"})

    response = loaded.request("GET", "/orders?page=2", auth(token))

    assert response.status == 200 and response.upstream is not None
    assert response.upstream_header("x-jwt-payload") == [token.split(".")[1]]
    assert response.upstream_header("x-jwt-sub") == ["user-1"]
    assert response.upstream_header("x-jwt-role") == ["admin"]
    assert response.upstream_header("x-jwt-tenant") == ["acme"]
    assert response.upstream_header("authorization") == []
    assert response.upstream["path"] == "/orders?page=2"
    payload = base64.urlsafe_b64decode(
        response.upstream_header("x-jwt-payload")[0] + "=="
    )
    assert json.loads(payload)["sub"] == "user-1"


def test_no_token_passes_without_identity_headers(loaded: Stack) -> None:
    response = loaded.request("GET", "/public")

    assert response.status == 200 and response.upstream is not None
    for name in ("x-jwt-payload", "x-jwt-sub", "x-jwt-role", "authorization"):
        assert response.upstream_header(name) == []


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": int(time.time()) - 120}, "Jwt is expired"),
        ({"nbf": int(time.time()) + 600}, "Jwt not yet valid"),
        ({"iss": OTHER}, "Jwt issuer is not configured"),
    ],
    ids=["expired", "not-yet-valid", "unknown-issuer"],
)
def test_invalid_tokens_get_401_with_the_challenge(
    loaded: Stack, signing_key: tokens.PrivateKey, claims: dict[str, Any], message: str
) -> None:
    assert_challenge(
        loaded.request("GET", "/x", auth(mint(signing_key, **claims))), message
    )


def test_bad_signature_gets_401(loaded: Stack) -> None:
    stranger = tokens.generate_key("RS256")

    response = loaded.request("GET", "/x", auth(mint(stranger)))

    assert_challenge(response, "Jwt verification fails")


def test_malformed_token_gets_401(loaded: Stack) -> None:
    response = loaded.request("GET", "/x", [("Authorization", "Bearer invalidToken")])

    assert_challenge(response, TokenMalformed.message)


def test_wrong_audience_gets_403(loaded: Stack, signing_key: tokens.PrivateKey) -> None:
    response = loaded.request("GET", "/x", auth(mint(signing_key, aud="other-api")))

    assert response.status == 403 and response.upstream is None
    assert response.body.decode() == "Audiences in Jwt are not allowed"
    assert response.header("www-authenticate") is None
    assert response.header("x-authz-reason") == "jwt_audience_not_allowed"


SPOOFED = [
    ("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9"),
    ("X-JWT-PAYLOAD", "eyJzdWIiOiJyb290In0"),
    ("x-jwt-sub", "admin"),
    ("x-jwt-sub", "root"),
    ("x-jwt-role", "admin"),
    ("x-jwt-tenant", "other"),
    ("x-jwt-tenant", "other-2"),
]


def test_client_copies_of_owned_headers_never_reach_upstream(loaded: Stack) -> None:
    response = loaded.request("GET", "/x", SPOOFED)

    assert response.status == 200 and response.upstream is not None
    for name in ("x-jwt-payload", "x-jwt-sub", "x-jwt-role", "x-jwt-tenant"):
        assert response.upstream_header(name) == [], name


def test_owned_headers_carry_only_our_values_with_a_token(
    loaded: Stack, signing_key: tokens.PrivateKey
) -> None:
    token = mint(signing_key)

    response = loaded.request("GET", "/x", [*SPOOFED, *auth(token)])

    assert response.status == 200
    assert response.upstream_header("x-jwt-payload") == [token.split(".")[1]]
    assert response.upstream_header("x-jwt-sub") == ["user-1"]
    assert response.upstream_header("x-jwt-role") == ["admin"]
    assert response.upstream_header("x-jwt-tenant") == [], "token has no org.tenant"


def test_underscore_look_alikes_are_removed(
    loaded: Stack, signing_key: tokens.PrivateKey
) -> None:
    response = loaded.request(
        "GET", "/x", [("x_jwt_sub", "admin"), *auth(mint(signing_key))]
    )

    assert response.status == 200
    assert response.upstream_header("x_jwt_sub") == []
    assert response.upstream_header("x-jwt-sub") == ["user-1"]


def test_forward_original_token_keeps_authorization(
    stack: Stack, key_server: KeyServer, signing_key: tokens.PrivateKey
) -> None:
    stack.use_config(config(key_server.url, forwardOriginalToken=True))
    token = mint(signing_key)

    response = stack.request("GET", "/x", auth(token))

    assert response.status == 200
    assert response.upstream_header("authorization") == [f"Bearer {token}"]


def test_token_in_query_parameter_is_verified_and_removed(
    loaded: Stack, signing_key: tokens.PrivateKey
) -> None:
    token = mint(signing_key)

    response = loaded.request("GET", f"/x?page=1&access_token={token}")

    assert response.status == 200 and response.upstream is not None
    assert response.upstream_header("x-jwt-sub") == ["user-1"]
    assert token not in response.upstream["path"]
    assert "page=1" in response.upstream["path"]


def test_token_in_cookie(
    stack: Stack, key_server: KeyServer, signing_key: tokens.PrivateKey
) -> None:
    stack.use_config(config(key_server.url, fromCookies=["session"]))

    good = stack.request(
        "GET", "/x", [("Cookie", f"theme=dark; session={mint(signing_key)}")]
    )
    header_only = stack.request("GET", "/x", auth(mint(signing_key)))

    assert good.status == 200 and good.upstream_header("x-jwt-sub") == ["user-1"]
    assert header_only.status == 200 and header_only.upstream_header("x-jwt-sub") == []


def test_two_rules_with_different_issuers(
    stack: Stack, key_server: KeyServer, signing_key: tokens.PrivateKey
) -> None:
    second_key = tokens.generate_key("ES256")
    inline = json.dumps({"keys": [tokens.public_jwk(second_key, "other-1")]})
    document = json.loads(config(key_server.url))
    document["spec"]["jwtRules"].append(
        {
            "issuer": OTHER,
            "jwks": inline,
            "outputClaimToHeaders": [{"header": "x-other", "claim": "sub"}],
        }
    )
    stack.use_config(json.dumps(document))
    from_other = tokens.mint(second_key, "other-1", {"iss": OTHER, "sub": "svc-9"})

    first = stack.request("GET", "/x", auth(mint(signing_key)))
    second = stack.request("GET", "/x", auth(from_other))

    assert first.status == 200 and first.upstream_header("x-jwt-sub") == ["user-1"]
    assert first.upstream_header("x-other") == []
    assert second.status == 200 and second.upstream_header("x-other") == ["svc-9"]
    assert second.upstream_header("x-jwt-payload") == []


def test_policy_deny_is_403_with_rbac_body(
    stack: Stack, key_server: KeyServer, signing_key: tokens.PrivateKey
) -> None:
    allow = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "role-members", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "when": [
                        {
                            "key": "request.auth.claims[role]",
                            "values": ["user", "admin"],
                        }
                    ]
                }
            ]
        },
    }
    stack.use_config(config(key_server.url) + "\n---\n" + json.dumps(allow))

    admin = stack.request("GET", "/x", auth(mint(signing_key)))
    guest = stack.request("GET", "/x", auth(mint(signing_key, role="guest")))
    anonymous = stack.request("GET", "/x")

    assert admin.status == 200
    assert (guest.status, guest.body.decode()) == (403, "RBAC: access denied")
    assert guest.upstream is None and guest.header("x-authz-decision-id")
    assert anonymous.status == 403
