"""Development keys and tokens, for ``authz-server token`` and the demo.

Not for production: a real identity provider owns its keys. The private key is
written with owner-only permissions.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
KEY_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def generate_key(algorithm: str = "RS256") -> PrivateKey:
    """A new private key for ``algorithm`` (RS256, ES256 or EdDSA)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {algorithm!r}")


def algorithm_for(key: PrivateKey) -> str:
    """The JWS algorithm a key signs with."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    return "EdDSA"


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    """The public half of ``key`` as a JWK with ``kid``, ``alg`` and ``use``."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "alg": algorithm_for(key), "use": "sig"}


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"{path}: not an RSA, EC or Ed25519 private key")
    return key


def write_key_pair(directory: Path, algorithm: str, kid: str) -> tuple[Path, Path]:
    """Write ``private.pem`` and ``jwks.json`` into ``directory``."""
    key = generate_key(algorithm)
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / "private.pem"
    jwks_path = directory / "jwks.json"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key))
    jwks_path.write_text(json.dumps({"keys": [public_jwk(key, kid)]}, indent=2) + "\n")
    return private_path, jwks_path


def mint(
    key: PrivateKey,
    kid: str,
    claims: dict[str, Any],
    *,
    expires_in: float | None = 3600,
    now: float | None = None,
) -> str:
    """Sign ``claims`` (``iat`` and ``exp`` added unless present) with ``key``."""
    now = time.time() if now is None else now
    payload = {"iat": int(now), **claims}
    if expires_in is not None and "exp" not in payload:
        payload["exp"] = int(now + expires_in)
    return jwt.encode(payload, key, algorithm=algorithm_for(key), headers={"kid": kid})
