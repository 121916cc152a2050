"""Fixtures of the attack catalog (``/work/shared/cases/attacks.md`` section 0).

Issuer A publishes, on a loopback :class:`KeyServer`, RSA key ``kA1`` (RS256) and EC
P-256 ``kA2`` (ES256), plus the odd entries the catalog probes: ``kA3`` (P-384, no
``alg``), ``kA4`` (RSA, no ``alg``), ``enc1`` (``use: enc``), ``oct1`` (a shared
secret), ``weak1024`` (RSA-1024) and ``shared`` (a kid issuer B publishes too).
Issuer B has ``kB1`` and its own ``shared``. ``T0`` is
``alg=RS256, kid=kA1, iss=A, aud=api, sub=alice, exp=now+300``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from checks import Authz, Json, b64, forge, request_authentication
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer

ISS_A = "https://idp-a.test"
ISS_B = "https://idp-b.test"
OCT_SECRET = b"0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Keys:
    """Every private key of the catalog's fixtures, by kid."""

    a: dict[str, Any]
    b: dict[str, Any]
    attacker_rsa: rsa.RSAPrivateKey
    attacker_ec: ec.EllipticCurvePrivateKey


def _jwk(key: Any, kid: str, **members: Any) -> Json:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: Json = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}
        jwk.update({"alg": "ES256", "use": "sig"} if kid == "kA2" else {})
    else:
        jwk = tokens.public_jwk(key, kid)
    jwk.update(members)
    return {name: value for name, value in jwk.items() if value is not None}


@pytest.fixture(scope="session")
def keys() -> Keys:
    a = {
        "kA1": tokens.generate_key("RS256"),
        "kA2": tokens.generate_key("ES256"),
        "kA3": ec.generate_private_key(ec.SECP384R1()),
        "kA4": tokens.generate_key("RS256"),
        "enc1": tokens.generate_key("RS256"),
        "weak1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "shared": tokens.generate_key("RS256"),
    }
    b = {"kB1": tokens.generate_key("RS256"), "shared": tokens.generate_key("RS256")}
    attacker_ec = ec.generate_private_key(ec.SECP256R1())
    return Keys(a, b, tokens.generate_key("RS256"), attacker_ec)  # type: ignore[arg-type]


def jwks_a(keys: Keys) -> Json:
    a = keys.a
    return {
        "keys": [
            _jwk(a["kA1"], "kA1"),
            _jwk(a["kA2"], "kA2"),
            _jwk(a["kA3"], "kA3"),
            _jwk(a["kA4"], "kA4", alg=None),
            _jwk(a["enc1"], "enc1", use="enc"),
            {"kty": "oct", "kid": "oct1", "k": b64(OCT_SECRET), "alg": "HS256"},
            _jwk(a["weak1024"], "weak1024"),
            _jwk(a["shared"], "shared"),
        ]
    }


@pytest.fixture(scope="session")
def idp_a(keys: Keys) -> Iterator[KeyServer]:
    with KeyServer(jwks=jwks_a(keys)) as server:
        yield server


@pytest.fixture(scope="session")
def idp_b(keys: Keys) -> Iterator[KeyServer]:
    jwks = {"keys": [_jwk(keys.b[kid], kid) for kid in ("kB1", "shared")]}
    with KeyServer(jwks=jwks) as server:
        yield server


@pytest.fixture(scope="session")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authz]:
    with Authz(tmp_path_factory.mktemp("security")) as service:
        yield service


@pytest.fixture(scope="session")
def issuers(idp_a: KeyServer, idp_b: KeyServer) -> Json:
    """RequestAuthentication for A (audience ``api``, payload and claim headers)
    and B."""
    return request_authentication(
        {
            "issuer": ISS_A,
            "jwksUri": idp_a.url,
            "audiences": ["api"],
            "outputPayloadToHeader": "x-jwt-payload",
            "outputClaimToHeaders": [
                {"header": "x-claim-role", "claim": "role"},
                {"header": "x-claim-groups", "claim": "groups"},
            ],
        },
        {"issuer": ISS_B, "jwksUri": idp_b.url, "audiences": ["api"]},
    )


def t0_claims(**overrides: Any) -> Json:
    """T0's claims with ``overrides`` (None drops a claim)."""
    base: Json = {"iss": ISS_A, "sub": "alice", "aud": "api"}
    base["exp"] = int(time.time()) + 300
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def t0(keys: Keys, kid: str = "kA1", **overrides: Any) -> str:
    """T0 (or a variant), signed by A's key ``kid``."""
    key = keys.a[kid]
    alg = "ES256" if kid == "kA2" else "RS256"
    return forge({"alg": alg, "typ": "JWT", "kid": kid}, t0_claims(**overrides), key)
