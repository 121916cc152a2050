"""Shared fixtures: real servers on 127.0.0.1, stopped by the fixture that started them.

* ``signing_key``: an RSA private key for the session, published as ``TEST_KID``;
* ``key_server``: a :class:`KeyServer` per test, serving ``signing_key``'s JWKS
  until the test calls ``set_jwks``;
* ``echo``: an :class:`EchoUpstream` per test;
* ``envoy_stack``: one authz-server + Envoy + echo for the session
  (see ``harness.Stack``); each test loads its own config with ``use_config``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import TEST_KID, Stack, jwks_of, running_stack

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
