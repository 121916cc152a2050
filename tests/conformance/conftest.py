"""Key servers for Istio's two sample JWKS documents."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from istio import COMMON, SAMPLES

from authz_server.demo.keyserver import KeyServer


@pytest.fixture(scope="session")
def common_keys() -> Iterator[KeyServer]:
    with KeyServer(jwks=json.loads((COMMON / "jwks.json").read_text())) as server:
        yield server


@pytest.fixture(scope="session")
def sample_keys() -> Iterator[KeyServer]:
    with KeyServer(jwks=json.loads((SAMPLES / "jwks.json").read_text())) as server:
        yield server
