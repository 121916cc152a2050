"""Shared fixtures: real servers on 127.0.0.1, stopped by the fixture that started them.

* ``signing_key``: an RSA private key for the session, published as ``TEST_KID``;
* ``key_server``: a :class:`KeyServer` per test, serving ``signing_key``'s JWKS
  until the test calls ``set_jwks``;
* ``echo``: an :class:`EchoUpstream` per test;
* ``envoy_stack``: one authz-server + Envoy + echo for the session
  (see ``harness.Stack``); each test loads its own config with ``use_config``;
* ``common_keys`` / ``sample_keys``: Istio's two sample JWKS documents, served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from harness import TEST_KID, Stack, jwks_of, running_stack
from istio_fixtures import COMMON, SAMPLES

from authz_server import tokens
from authz_server.demo.echo import EchoUpstream
from authz_server.demo.keyserver import KeyServer


@pytest.fixture(scope="session")
def signing_key() -> tokens.PrivateKey:
    return tokens.generate_key("RS256")


@pytest.fixture
def key_server(signing_key: tokens.PrivateKey) -> Iterator[KeyServer]:
    with KeyServer(jwks=jwks_of(signing_key, TEST_KID)) as server:
        yield server


@pytest.fixture
def echo() -> Iterator[EchoUpstream]:
    with EchoUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def envoy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("envoy-stack")) as stack:
        yield stack


@pytest.fixture(scope="session")
def common_keys() -> Iterator[KeyServer]:
    """Istio's integration-test JWKS (tests/common/jwt), served on loopback."""
    with KeyServer(jwks=json.loads((COMMON / "jwks.json").read_text())) as server:
        yield server


@pytest.fixture(scope="session")
def sample_keys() -> Iterator[KeyServer]:
    """Istio's tutorial JWKS (security/tools/jwt/samples), served on loopback."""
    with KeyServer(jwks=json.loads((SAMPLES / "jwks.json").read_text())) as server:
        yield server
