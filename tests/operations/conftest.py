"""An RSA and an EC key, and a JWKS server on loopback that each test controls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from operations_support import jwks

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer


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
