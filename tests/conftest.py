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
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from harness import TEST_KID, Stack, jwks_of, running_stack
from istio_fixtures import COMMON, SAMPLES

from authz_server import tokens
from authz_server.demo.echo import EchoUpstream
from authz_server.demo.keyserver import KeyServer
from authz_server.observe import JsonFormatter


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


class _LeakWatch(logging.Handler):
    """Keeps every authz_server log record of the run, formatted as shipped."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_watch = _LeakWatch()
_minted: set[str] = set()


def _recording(function: Any) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        token = function(*args, **kwargs)
        _minted.add(token)
        return token

    return record


def pytest_configure(config: pytest.Config) -> None:
    """Record every token the run mints (our minting, PyJWT's, the hand-built
    ones of the security tests), and every authz_server log line at DEBUG."""
    import checks
    import jwt

    tokens.mint = _recording(tokens.mint)
    jwt.encode = _recording(jwt.encode)
    checks.forge = _recording(checks.forge)
    checks.hmac_token = _recording(checks.hmac_token)
    logger = logging.getLogger("authz_server")
    logger.addHandler(_watch)
    logger.setLevel(logging.DEBUG)


def _signature(token: str) -> str:
    """The token's signature segment, or the whole token when that is too short
    to be telling (an unsigned token)."""
    signature = token.rsplit(".", 1)[-1]
    return signature if len(signature) >= 16 else token


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any minted token (or its signature) reached a log line."""
    text = "\n".join(_watch.lines)
    leaked = [
        token[:24] + "..."
        for token in _minted
        if token in text or _signature(token) in text
    ]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"secrets check: {len(_minted)} minted tokens, {len(_watch.lines)} "
            f"log lines at DEBUG, {len(leaked)} leaked"
        )
    if leaked:
        if reporter is not None:
            reporter.write_line(f"tokens found in log output: {leaked}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
