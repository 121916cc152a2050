"""Helpers shared by the operations tests: an issuer, its JWKS, tokens, rules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authz_server import tokens

ISSUER = "https://idp.example.com"


def jwks(*keys: tuple[tokens.PrivateKey, str]) -> dict[str, Any]:
    return {"keys": [tokens.public_jwk(key, kid) for key, kid in keys]}


def mint(key: tokens.PrivateKey, kid: str, **claims: Any) -> str:
    return tokens.mint(key, kid, {"iss": ISSUER, "sub": "user-1", **claims})


def rule(url: str, **fields: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "jwksUri": url, **fields}


def eventually(
    condition: Callable[[], bool], seconds: float = 10, why: str = "condition not met"
) -> None:
    """Wait until ``condition()`` holds, failing with ``why`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)
