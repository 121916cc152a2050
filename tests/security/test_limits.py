"""Every configurable limit denies with its own reason, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checks import Authz, Result, bearer, request_authentication

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.settings import Limits, Settings

ISSUER = "https://limits.example.com"
SMALL = Limits(
    max_header_bytes=4096,
    max_token_bytes=2048,
    max_json_depth=4,
    max_json_members=20,
    max_claim_header_bytes=64,
    max_jwks_bytes=2048,
    max_jwks_keys=2,
)


@pytest.fixture(scope="module")
def key() -> tokens.PrivateKey:
    return tokens.generate_key("ES256")


@pytest.fixture
def keys(key: tokens.PrivateKey) -> Iterator[KeyServer]:
    with KeyServer(jwks={"keys": [tokens.public_jwk(key, "k1")]}) as server:
        yield server


@pytest.fixture
def authz(tmp_path: Path, keys: KeyServer) -> Iterator[Authz]:
    with Authz(tmp_path, Settings(limits=SMALL)) as running:
        rule = {
            "issuer": ISSUER,
            "jwksUri": keys.url,
            "outputClaimToHeaders": [{"header": "x-name", "claim": "name"}],
        }
        running.load(request_authentication(rule))
        yield running


def sign(key: tokens.PrivateKey, **claims: Any) -> str:
    return tokens.mint(key, "k1", {"iss": ISSUER, "sub": "u", **claims})


def denied(result: Result, status: int, reason: str) -> None:
    assert (result.status, result.reason) == (status, reason), result


def test_within_limits_is_allowed(authz: Authz, key: tokens.PrivateKey) -> None:
    result = authz.check(headers=bearer(sign(key, name="ada", deep={"a": {"b": 1}})))

    assert result.allowed and result.headers_set == {"x-name": "ada"}


def test_large_header_is_431(authz: Authz) -> None:
    denied(authz.check(headers={"x-big": "a" * 5000}), 431, "header_too_large")


def test_large_token_is_401(authz: Authz, key: tokens.PrivateKey) -> None:
    denied(authz.check(headers=bearer(sign(key, pad="x" * 2100))), 401, "jwt_too_large")


@pytest.mark.parametrize(
    "claims",
    [{"deep": {"a": {"b": {"c": {"d": 1}}}}}, {"many": list(range(30))}],
    ids=["depth", "members"],
)
def test_complex_payload_is_401(
    authz: Authz, key: tokens.PrivateKey, claims: dict[str, Any]
) -> None:
    denied(authz.check(headers=bearer(sign(key, **claims))), 401, "jwt_too_complex")


def test_large_claim_header_is_401(authz: Authz, key: tokens.PrivateKey) -> None:
    result = authz.check(headers=bearer(sign(key, name="n" * 100)))

    denied(result, 401, "claim_header_too_large")


@pytest.mark.parametrize(
    "document",
    [
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "A" * 2000, "y": "B"}]},
        {"keys": [{"kty": "oct", "k": "AA"}] * 3},
    ],
    ids=["bytes", "keys"],
)
def test_oversized_key_sets_are_refused(
    authz: Authz, keys: KeyServer, key: tokens.PrivateKey, document: dict[str, Any]
) -> None:
    keys.set_jwks(json.dumps(document).encode())
    source = authz.server.registry.sources()[0]
    errors = source.fetch_results["error"]

    source.refresh()

    assert source.fetch_results["error"] == errors + 1
    assert "larger than 2048 bytes" in source.last_error or "more than 2 keys" in (
        source.last_error
    )
