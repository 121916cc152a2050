"""An RSA key pair and a JWKS server on loopback that each test controls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer

ISSUER = "https://idp.example.com"


def jwks(*keys: tuple[tokens.PrivateKey, str]) -> dict[str, Any]:
    return {"keys": [tokens.public_jwk(key, kid) for key, kid in keys]}


@pytest.fixture(scope="session")
def key_one() -> tokens.PrivateKey:
    return tokens.generate_key("RS256")


@pytest.fixture(scope="session")
def key_two() -> tokens.PrivateKey:
    return tokens.generate_key("ES256")


@pytest.fixture
def idp(key_one: tokens.PrivateKey) -> Iterator[KeyServer]:
    with KeyServer(jwks=jwks((key_one, "k1"))) as server:
        yield server


def mint(key: tokens.PrivateKey, kid: str, **claims: Any) -> str:
    return tokens.mint(key, kid, {"iss": ISSUER, "sub": "user-1", **claims})


def rule(url: str, **fields: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "jwksUri": url, **fields}
