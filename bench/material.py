"""Keys, tokens and policy files for one benchmark run, written to a work folder.

One RS256 key signs the token every load-generator request carries (role
``user``: allowed by the role-membership policy). ES256 and EdDSA keys sit in the
same JWKS so the in-process benchmark can compare algorithms under one config.
An ``oct`` (HS256) key signs the many distinct tokens of the cache-memory
measurement, padded to the RS256 token's length so each cache entry costs what
an RS256 entry costs (minting 100,000 RS256 tokens would take minutes).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from authz_server import tokens

ISSUER = "https://bench.authz-server.local"
AUDIENCE = "bench-api"
ALGORITHMS = ("RS256", "ES256", "EdDSA")
HS_KID = "bench-hs256"
TOKEN_LIFETIME_SECONDS = 24 * 3600
CONFIGS = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class Material:
    """Everything a run signs with or hands to Envoy and authz-server."""

    work: Path
    keys: dict[str, tokens.PrivateKey]
    jwks: dict[str, Any]
    jwks_path: Path
    policy_path: Path
    hs_secret: bytes
    hs_policy_path: Path
    token: str

    def kid(self, algorithm: str) -> str:
        return f"bench-{algorithm.lower()}"

    def mint(self, algorithm: str = "RS256", **claims: Any) -> str:
        """A token of ``algorithm`` for the bench issuer and audience."""
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "role": "user"}
        payload.update(claims)
        key = self.keys[algorithm]
        return tokens.mint(
            key, self.kid(algorithm), payload, expires_in=TOKEN_LIFETIME_SECONDS
        )

    def hs_tokens(self, count: int, length: int) -> Iterator[str]:
        """``count`` distinct HS256 tokens, each ``length`` characters or more."""
        header = _segment({"alg": "HS256", "kid": HS_KID, "typ": "JWT"})
        expires = int(time.time()) + TOKEN_LIFETIME_SECONDS
        base = {"iss": ISSUER, "aud": AUDIENCE, "role": "user", "exp": expires}
        probe = _segment({**base, "sub": "0" * 8, "pad": ""})
        pad = "x" * max(0, int((length - len(header) - len(probe) - 45) * 3 / 4))
        for number in range(count):
            payload = _segment({**base, "sub": f"{number:08d}", "pad": pad})
            signing_input = f"{header}.{payload}".encode()
            digest = hmac.new(self.hs_secret, signing_input, hashlib.sha256).digest()
            yield f"{header}.{payload}.{_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def create(work: Path) -> Material:
    """Generate keys, the JWKS file, both policies and the load token in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    keys = {algorithm: tokens.generate_key(algorithm) for algorithm in ALGORITHMS}
    jwks = {
        "keys": [
            tokens.public_jwk(key, f"bench-{algorithm.lower()}")
            for algorithm, key in keys.items()
        ]
    }
    jwks_path = work / "jwks.json"
    jwks_path.write_text(json.dumps(jwks), encoding="utf-8")
    hs_secret = secrets.token_bytes(32)
    hs_jwks = {
        "keys": [
            {"kty": "oct", "kid": HS_KID, "alg": "HS256", "k": _b64(hs_secret)},
        ]
    }
    material = Material(
        work=work,
        keys=keys,
        jwks=jwks,
        jwks_path=jwks_path,
        policy_path=write_policy(work / "policy.yaml", jwks),
        hs_secret=hs_secret,
        hs_policy_path=write_policy(work / "policy-hs256.yaml", hs_jwks),
        token="",
    )
    token = material.mint("RS256")
    return dataclasses.replace(material, token=token)


def write_policy(path: Path, jwks: dict[str, Any]) -> Path:
    """``configs/policy.yaml`` with ``jwks`` inline in its one jwtRule."""
    documents = list(
        yaml.safe_load_all((CONFIGS / "policy.yaml").read_text(encoding="utf-8"))
    )
    for document in documents:
        if document["kind"] == "RequestAuthentication":
            document["spec"]["jwtRules"][0]["jwks"] = json.dumps(jwks)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path
