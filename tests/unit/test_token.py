"""Token parsing and claim checks: Envoy's order, Envoy's messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from authz_server.authn.token import (
    check_audience,
    check_time,
    parse,
    sanitize_audience,
)
from authz_server.errors import (
    AudienceNotAllowed,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    UnsupportedAlgorithm,
    UnsupportedHeader,
)

NOW = 1_800_000_000
HEADER = {"alg": "RS256", "kid": "k1"}


def segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(payload: Any, header: Any = None, signature: str = "c2ln") -> str:
    return f"{segment(header or HEADER)}.{segment(payload)}.{signature}"


def test_parse_reads_claims_and_keeps_the_payload_segment() -> None:
    raw = token({"iss": "a", "sub": "b", "aud": ["x", "y"], "exp": NOW, "nbf": 5})

    jwt = parse(raw)

    assert (jwt.alg, jwt.kid, jwt.issuer) == ("RS256", "k1", "a")
    assert jwt.audiences == ("x", "y")
    assert (jwt.expires, jwt.not_before) == (NOW, 5)
    assert jwt.payload_segment == raw.split(".")[1]
    assert jwt.signature == b"sig"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("invalidToken", "with two dots and 3 sections"),
        ("a.b", "with two dots and 3 sections"),
        ("a.b.c.d.e", "with two dots and 3 sections"),
        ("x.y.", "with two dots and 3 sections"),
        ("a+b.c.d", "Jwt header is an invalid Base64url encoded"),
        (f"{segment(b'not json')}.e30.c2ln", "Jwt header is an invalid JSON"),
        (f"{segment([1])}.e30.c2ln", "Jwt header is an invalid JSON"),
        (f"{segment(HEADER)}.%%%.c2ln", "Jwt payload is an invalid Base64url encoded"),
        (f"{segment(HEADER)}.{segment(b'[')}.c2ln", "Jwt payload is an invalid JSON"),
        (f"{segment(HEADER)}.e30.c2l*", "Jwt signature is an invalid Base64url"),
        (f"{segment(HEADER)}.e30.c2l", "Jwt signature is an invalid Base64url"),
    ],
    ids=[
        "one-part",
        "two-parts",
        "five-parts-jwe",
        "empty-signature",
        "header-base64",
        "header-json",
        "header-not-object",
        "payload-base64",
        "payload-json",
        "signature-base64",
        "signature-non-canonical",
    ],
)
def test_malformed_tokens_name_the_broken_part(raw: str, message: str) -> None:
    with pytest.raises(TokenMalformed, match=message):
        parse(raw)


@pytest.mark.parametrize(
    ("header", "error", "message"),
    [
        ({"kid": "k"}, UnsupportedAlgorithm, "required and must be a string"),
        ({"alg": 1}, UnsupportedAlgorithm, "required and must be a string"),
        ({"alg": "none"}, UnsupportedAlgorithm, "is not supported"),
        ({"alg": "HS1"}, UnsupportedAlgorithm, "is not supported"),
        ({"alg": "RS256", "kid": 7}, TokenMalformed, r"\[kid\] field is not a string"),
        ({"alg": "RS256", "crit": ["exp"]}, UnsupportedHeader, "not supported"),
        ({"alg": "RS256", "b64": False}, UnsupportedHeader, "not supported"),
    ],
)
def test_header_fields_are_checked(
    header: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parse(token({}, header))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"iss": 1}, r"\[iss\] field is not a string"),
        ({"sub": ["a"]}, r"\[sub\] field is not a string"),
        ({"jti": None}, r"\[jti\] field is not a string"),
        ({"exp": "9999999999"}, r"\[exp\] field is not an integer"),
        ({"exp": True}, r"\[exp\] field is not an integer"),
        ({"nbf": -1}, r"\[nbf\] field is not a positive 64 bit integer"),
        ({"iat": 2**64}, r"\[iat\] field is not a positive 64 bit integer"),
        ({"aud": 42}, r"\[aud\] field is not a string or string list"),
        ({"aud": ["a", 1]}, r"\[aud\] field is not a string or string list"),
    ],
)
def test_claim_types_are_checked(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenMalformed, match=message):
        parse(token(payload))


@pytest.mark.parametrize(
    "payload_text",
    ['{"sub": "a", "sub": "b"}', '{"exp": NaN}', '{"exp": Infinity}', "[" * 5000],
    ids=["duplicate-member", "nan", "infinity", "deep-nesting"],
)
def test_hostile_payload_json_is_malformed(payload_text: str) -> None:
    with pytest.raises(TokenMalformed, match="Jwt payload is an invalid JSON"):
        parse(token(payload_text.encode()))


def test_infinite_time_is_not_a_64_bit_integer() -> None:
    with pytest.raises(TokenMalformed, match="not a positive 64 bit integer"):
        parse(token(b'{"exp": 1e999}'))


def test_float_times_are_truncated() -> None:
    assert parse(token({"exp": 1764000000.9})).expires == 1764000000


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"exp": NOW - 59}, None),
        ({"exp": NOW - 61}, TokenExpired),
        ({"nbf": NOW + 30}, None),
        ({"nbf": NOW + 61}, TokenNotYetValid),
        ({"iat": NOW + 3600}, None),
        ({}, None),
        ({"exp": 0}, None),
    ],
    ids=[
        "exp-in-skew",
        "expired",
        "nbf-in-skew",
        "nbf-future",
        "iat-ignored",
        "no-exp",
        "exp-zero",
    ],
)
def test_time_window_allows_sixty_seconds_of_skew(
    claims: dict[str, Any], error: type[Exception] | None
) -> None:
    jwt = parse(token(claims))

    if error is None:
        check_time(jwt, NOW)
    else:
        with pytest.raises(error):
            check_time(jwt, NOW)


@pytest.mark.parametrize(
    ("aud", "allowed", "passes"),
    [
        ("api.example.com", {"api.example.com"}, True),
        (["other", "api.example.com"], {"api.example.com"}, True),
        (["other"], {"api.example.com"}, False),
        (None, {"api.example.com"}, False),
        ("https://api.example.com/", {"api.example.com"}, True),
        ("whatever", set(), True),
        ([], {"api"}, False),
    ],
)
def test_audiences_are_sanitised_and_any_one_suffices(
    aud: Any, allowed: set[str], passes: bool
) -> None:
    payload = {} if aud is None else {"aud": aud}
    jwt = parse(token(payload))
    allowed_set = frozenset(sanitize_audience(a) for a in allowed)

    if passes:
        check_audience(jwt, allowed_set)
    else:
        with pytest.raises(AudienceNotAllowed):
            check_audience(jwt, allowed_set)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://foo/", "foo"),
        ("http://foo", "foo"),
        ("foo//", "foo/"),
        ("HTTPS://foo", "HTTPS://foo"),
    ],
)
def test_sanitize_audience(given: str, expected: str) -> None:
    assert sanitize_audience(given) == expected
