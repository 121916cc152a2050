"""Key sets, signature verification and the "valid if present" requirement."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authz_server import tokens
from authz_server.authn.authenticate import (
    Authenticator,
    Provider,
    claim_header_value,
)
from authz_server.authn.extract import Location, cookies, from_header, locations_for
from authz_server.authn.jwks import Fetched, InlineKeys, RemoteKeys
from authz_server.authn.keys import KeySetError, parse_key_set
from authz_server.config.model import ClaimToHeader, JwtHeader, JwtRule
from authz_server.errors import (
    AmbiguousTokens,
    AudienceNotAllowed,
    IssuerNotConfigured,
    KeyNotFound,
    KeysUnavailable,
    SignatureInvalid,
    TokenExpired,
    TokenOutOfPlace,
)
from authz_server.request import Request

NOW = 1_800_000_000.0
ISSUER = "https://idp.example.com"


@pytest.fixture(scope="module")
def rsa_key() -> tokens.PrivateKey:
    return tokens.generate_key("RS256")


def key_set_json(*entries: dict[str, Any]) -> str:
    return json.dumps({"keys": list(entries)})


def provider(rule: JwtRule, key: tokens.PrivateKey, kid: str = "k1") -> Provider:
    keys = parse_key_set(
        key_set_json(tokens.public_jwk(key, kid)), allow_symmetric=True
    )
    return Provider(
        name=f"ns/ra {rule.field_path}",
        rule=rule,
        locations=locations_for(rule),
        audiences=frozenset(rule.audiences),
        space_delimited=frozenset(
            {"scope", "permission"} | set(rule.space_delimited_claims)
        ),
        keys=InlineKeys(keys),
    )


def sign(key: tokens.PrivateKey, claims: dict[str, Any], kid: str = "k1") -> str:
    return tokens.mint(key, kid, {"iss": ISSUER, "sub": "user-1", **claims}, now=NOW)


def hmac_token(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 token MAC'd with ``secret`` (PyJWT refuses public keys as secrets)."""
    header = base64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signing_input = f"{header}.{base64url(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64url(mac)}"


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def request(headers: dict[str, str] | None = None, path: str = "/") -> Request:
    return Request(method="GET", host="api", raw_path=path, headers=headers or {})


RULE = JwtRule(
    field_path="spec.jwtRules[0]",
    issuer=ISSUER,
    output_payload_to_header="x-jwt-payload",
    output_claim_to_headers=(ClaimToHeader("x-user", "sub"),),
)


def test_valid_token_gives_identity_and_overwrites_owned_headers(
    rsa_key: tokens.PrivateKey,
) -> None:
    token = sign(rsa_key, {"scope": "read write"})
    headers = {"authorization": f"Bearer {token}", "x_user": "admin"}

    result = Authenticator().authenticate(
        [provider(RULE, rsa_key)], request(headers), NOW
    )

    assert result.identity is not None
    assert result.identity.principal == f"{ISSUER}/user-1"
    assert result.identity.claims["scope"] == ["read", "write"]
    assert dict(result.headers.set) == {
        "x-jwt-payload": token.split(".")[1],
        "x-user": "user-1",
    }
    assert set(result.headers.remove) == {"x_user", "authorization"}


def test_no_token_passes_and_strips_owned_headers(rsa_key: tokens.PrivateKey) -> None:
    headers = {"x-jwt-payload": "e30", "x-user": "admin"}

    result = Authenticator().authenticate(
        [provider(RULE, rsa_key)], request(headers), NOW
    )

    assert result.identity is None
    assert result.headers.set == ()
    assert set(result.headers.remove) == {"x-jwt-payload", "x-user"}


def test_forward_original_token_keeps_the_header(rsa_key: tokens.PrivateKey) -> None:
    rule = replace(RULE, forward_original_token=True)
    headers = {"authorization": f"Bearer {sign(rsa_key, {})}"}

    result = Authenticator().authenticate(
        [provider(rule, rsa_key)], request(headers), NOW
    )

    assert "authorization" not in result.headers.remove


def test_query_token_is_removed_from_the_query(rsa_key: tokens.PrivateKey) -> None:
    path = f"/items?access_token={sign(rsa_key, {})}&page=2"

    result = Authenticator().authenticate(
        [provider(RULE, rsa_key)], request(path=path), NOW
    )

    assert result.identity is not None
    assert result.headers.remove_params == ("access_token",)


def test_cookie_token_verifies(rsa_key: tokens.PrivateKey) -> None:
    rule = replace(RULE, from_cookies=("session",))
    headers = {"cookie": f"theme=dark; session={sign(rsa_key, {})}; x=1"}

    result = Authenticator().authenticate(
        [provider(rule, rsa_key)], request(headers), NOW
    )

    assert result.identity is not None


def test_unknown_issuer_at_shared_location_is_rejected(
    rsa_key: tokens.PrivateKey,
) -> None:
    headers = {"authorization": f"Bearer {sign(rsa_key, {'iss': 'https://evil'})}"}

    with pytest.raises(IssuerNotConfigured):
        Authenticator().authenticate([provider(RULE, rsa_key)], request(headers), NOW)


def test_real_failure_wins_over_unknown_issuer(rsa_key: tokens.PrivateKey) -> None:
    other = replace(RULE, issuer="https://other.example.com", field_path="r1")
    headers = {"authorization": f"Bearer {sign(rsa_key, {'exp': NOW - 3600})}"}
    providers = [provider(other, rsa_key), provider(RULE, rsa_key)]

    with pytest.raises(TokenExpired):
        Authenticator().authenticate(providers, request(headers), NOW)


def test_any_rule_accepting_the_token_suffices(rsa_key: tokens.PrivateKey) -> None:
    strict = replace(RULE, audiences=("bar",), field_path="r0")
    open_rule = replace(RULE, field_path="r1")
    headers = {"authorization": f"Bearer {sign(rsa_key, {})}"}

    result = Authenticator().authenticate(
        [provider(strict, rsa_key), provider(open_rule, rsa_key)], request(headers), NOW
    )

    assert result.identity is not None and result.identity.rule == "ns/ra r1"


def test_audience_failure_is_forbidden(rsa_key: tokens.PrivateKey) -> None:
    rule = replace(RULE, audiences=("api",))
    headers = {"authorization": f"Bearer {sign(rsa_key, {'aud': 'other'})}"}

    with pytest.raises(AudienceNotAllowed) as caught:
        Authenticator().authenticate([provider(rule, rsa_key)], request(headers), NOW)
    assert caught.value.status == 403


def test_two_distinct_tokens_are_ambiguous(rsa_key: tokens.PrivateKey) -> None:
    headers = {"authorization": f"Bearer {sign(rsa_key, {})}"}
    path = f"/?access_token={sign(rsa_key, {'sub': 'user-2'})}"

    with pytest.raises(AmbiguousTokens):
        Authenticator().authenticate(
            [provider(RULE, rsa_key)], request(headers, path), NOW
        )


@pytest.mark.parametrize("form", ["bearer {t}", "{t}", "Bearer\t{t}", "Token {t}"])
def test_jwt_without_the_prefix_is_rejected(
    rsa_key: tokens.PrivateKey, form: str
) -> None:
    headers = {"authorization": form.format(t=sign(rsa_key, {}))}

    with pytest.raises(TokenOutOfPlace):
        Authenticator().authenticate([provider(RULE, rsa_key)], request(headers), NOW)


def test_other_schemes_are_not_tokens(rsa_key: tokens.PrivateKey) -> None:
    headers = {"authorization": "Basic dXNlcjpwYXNz"}

    result = Authenticator().authenticate(
        [provider(RULE, rsa_key)], request(headers), NOW
    )

    assert result.identity is None and "authorization" not in result.headers.remove


def test_same_token_twice_is_one_token(rsa_key: tokens.PrivateKey) -> None:
    token = sign(rsa_key, {})
    headers = {"authorization": f"Bearer {token}"}

    result = Authenticator().authenticate(
        [provider(RULE, rsa_key)], request(headers, f"/?access_token={token}"), NOW
    )

    assert result.identity is not None


def test_cors_preflight_skips_tokens(rsa_key: tokens.PrivateKey) -> None:
    headers = {
        "authorization": "Bearer garbage",
        "origin": "https://app.example.com",
        "access-control-request-method": "GET",
    }
    preflight = Request(method="OPTIONS", host="api", raw_path="/", headers=headers)

    result = Authenticator().authenticate([provider(RULE, rsa_key)], preflight, NOW)

    assert result.identity is None


def test_signature_from_another_key_fails(rsa_key: tokens.PrivateKey) -> None:
    other = tokens.generate_key("RS256")
    headers = {"authorization": f"Bearer {sign(other, {})}"}

    with pytest.raises(SignatureInvalid, match="Jwt verification fails"):
        Authenticator().authenticate([provider(RULE, rsa_key)], request(headers), NOW)


def test_unknown_kid_is_key_not_found(rsa_key: tokens.PrivateKey) -> None:
    headers = {"authorization": f"Bearer {sign(rsa_key, {}, kid='k9')}"}

    with pytest.raises(KeyNotFound, match="doesn't have key to match kid or alg"):
        Authenticator().authenticate([provider(RULE, rsa_key)], request(headers), NOW)


def test_hmac_token_against_rsa_key_fails(rsa_key: tokens.PrivateKey) -> None:
    jwk = tokens.public_jwk(rsa_key, "k1")
    del jwk["alg"]
    source = InlineKeys(parse_key_set(key_set_json(jwk), allow_symmetric=True))
    forged = hmac_token(json.dumps(jwk).encode(), {"iss": ISSUER, "sub": "admin"})
    rule_provider = replace(provider(RULE, rsa_key), keys=source)
    headers = {"authorization": f"Bearer {forged}"}

    with pytest.raises(SignatureInvalid):
        Authenticator().authenticate([rule_provider], request(headers), NOW)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_each_key_type_verifies(algorithm: str) -> None:
    key = tokens.generate_key(algorithm)
    headers = {"authorization": f"Bearer {sign(key, {})}"}

    result = Authenticator().authenticate([provider(RULE, key)], request(headers), NOW)

    assert result.identity is not None


def test_unusable_keys_are_skipped_not_fatal(rsa_key: tokens.PrivateKey) -> None:
    good = tokens.public_jwk(rsa_key, "k1")
    document = key_set_json(
        {"kty": "OKP", "crv": "Ed448", "kid": "x", "x": "AA"},
        {"kty": "RSA", "kid": "y", "x5c": ["AA"]},
        {"kty": "what"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": good["n"], "e": "AQAB"},
        good,
    )

    key_set = parse_key_set(document, allow_symmetric=False)

    assert [key.kid for key in key_set.keys] == ["k1"]
    assert key_set.skipped == 4


def test_short_rsa_and_remote_oct_keys_are_skipped() -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = {**pyjwt.algorithms.RSAAlgorithm.to_jwk(short.public_key(), as_dict=True)}
    secret = {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}

    with pytest.raises(KeySetError, match="doesn't have any valid public key"):
        parse_key_set(key_set_json(weak, secret), allow_symmetric=False)


def test_kid_miss_refetches_once_per_interval(rsa_key: tokens.PrivateKey) -> None:
    rotated = tokens.generate_key("RS256")
    served = [key_set_json(tokens.public_jwk(rsa_key, "k1"))]
    fetched: list[str] = []
    clock = [0.0]

    def fetch(url: str, timeout: float) -> Fetched:
        fetched.append(url)
        return Fetched(served[-1].encode())

    source = RemoteKeys("http://keys", timeout=1, fetch=fetch, clock=lambda: clock[0])
    source.refresh()
    rule_provider = replace(provider(RULE, rsa_key), keys=source)
    served.append(
        key_set_json(tokens.public_jwk(rsa_key, "k1"), tokens.public_jwk(rotated, "k2"))
    )
    clock[0] = 100.0

    new_kid = {"authorization": f"Bearer {sign(rotated, {}, kid='k2')}"}
    result = Authenticator().authenticate([rule_provider], request(new_kid), NOW)
    assert result.identity is not None
    assert len(fetched) == 2

    invented = {"authorization": f"Bearer {sign(rotated, {}, kid='zz')}"}
    for _ in range(20):
        with pytest.raises(KeyNotFound):
            Authenticator().authenticate([rule_provider], request(invented), NOW)
    assert len(fetched) == 2


def test_unreachable_keys_deny_and_recover(rsa_key: tokens.PrivateKey) -> None:
    available = [False]
    clock = [0.0]

    def fetch(url: str, timeout: float) -> Fetched:
        if not available[0]:
            raise OSError("connection refused")
        return Fetched(key_set_json(tokens.public_jwk(rsa_key, "k1")).encode())

    source = RemoteKeys("http://keys", timeout=1, fetch=fetch, clock=lambda: clock[0])
    source.refresh()
    rule_provider = replace(provider(RULE, rsa_key), keys=source)
    headers = {"authorization": f"Bearer {sign(rsa_key, {})}"}

    with pytest.raises(KeysUnavailable, match="Jwks remote fetch is failed"):
        Authenticator().authenticate([rule_provider], request(headers), NOW)
    assert source.last_error == "connection refused"

    available[0] = True
    clock[0] = 60.0
    result = Authenticator().authenticate([rule_provider], request(headers), NOW)
    assert result.identity is not None


@pytest.mark.parametrize(
    ("value", "prefix", "expected"),
    [
        ("Bearer abc.def.ghi", "Bearer ", "abc.def.ghi"),
        ("bearer abc", "Bearer ", None),
        ("Bearer    abc", "Bearer ", "abc"),
        ("Bearer abc trailing", "Bearer ", "abc trailing"),
        ("Basic dXNlcg==, Bearer abc", "Bearer ", "abc"),
        ("Bearer", "Bearer ", None),
        ("raw.token", "", "raw.token"),
    ],
)
def test_header_extraction_follows_envoy(
    value: str, prefix: str, expected: str | None
) -> None:
    assert from_header(value, prefix) == expected


def test_default_locations_and_configured_ones_replace_them() -> None:
    assert locations_for(JwtRule("r")) == (
        Location("header", "authorization", "Bearer "),
        Location("param", "access_token"),
    )
    custom = JwtRule("r", from_headers=(JwtHeader("X-Token", "Value "),))
    assert locations_for(custom) == (Location("header", "x-token", "Value "),)


def test_cookie_parsing_takes_first_and_unquotes() -> None:
    assert cookies('a=1; b="two"; a=3') == {"a": "1", "b": "two"}


@pytest.mark.parametrize(
    ("claim", "payload", "expected"),
    [
        ("iss", {"iss": "a"}, "a"),
        ("iat", {"iat": 1562182722}, "1562182722"),
        ("f", {"f": 1.5}, "1.500000"),
        ("n", {"n": -5}, "-5.000000"),
        ("b", {"b": True}, "true"),
        ("a.b", {"a": {"b": "nested"}, "a.b": "flat"}, "nested"),
        ("groups", {"groups": ["x"]}, None),
        ("o", {"o": {"k": 1}}, None),
        ("e", {"e": ""}, None),
        ("missing", {}, None),
        ("crlf", {"crlf": "a\r\nx-admin: 1"}, None),
        ("utf8", {"utf8": "Zoë"}, "Zoë"),
    ],
)
def test_claim_header_values_follow_envoy(
    claim: str, payload: dict[str, Any], expected: str | None
) -> None:
    assert claim_header_value(payload, claim) == expected


def test_oversized_rsa_and_short_inline_oct_keys_are_skipped(
    rsa_key: tokens.PrivateKey,
) -> None:
    modulus = (1 << 9000) + 1
    huge = {
        "kty": "RSA",
        "kid": "huge",
        "n": base64url(modulus.to_bytes(1126, "big")),
        "e": "AQAB",
    }
    short_secret = {"kty": "oct", "kid": "short", "k": base64url(b"sixteen-bytes-ok")}
    good = tokens.public_jwk(rsa_key, "k1")

    key_set = parse_key_set(
        key_set_json(huge, short_secret, good), allow_symmetric=True
    )

    assert [key.kid for key in key_set.keys] == ["k1"]
    assert key_set.skipped == 2


def test_background_refresh_does_not_repeat_a_fetch_just_made(
    rsa_key: tokens.PrivateKey,
) -> None:
    fetched: list[str] = []

    def fetch(url: str, timeout: float) -> Fetched:
        fetched.append(url)
        return Fetched(key_set_json(tokens.public_jwk(rsa_key, "k1")).encode())

    source = RemoteKeys("http://keys", timeout=1, fetch=fetch)
    assert source.due(), "a new source is due at once"
    source.refresh()

    source.refresh(only_if_due=True)

    assert len(fetched) == 1
