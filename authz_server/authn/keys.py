"""Key sets: a JWKS document turned into keys that can verify signatures.

Each key records the algorithms it may verify, derived from its own type and curve
(and its ``alg`` member, when present), never from a token. Keys we cannot or will
not use are skipped and counted, so one odd key never disables an issuer:

* ``use`` other than ``sig``; unknown ``kty``; EC curves other than P-256/384/521;
  OKP curves other than Ed25519; RSA keys without ``n``/``e`` (``x5c`` is not read);
* RSA keys shorter than ``min_rsa_bits`` (2048 by default) or longer than
  ``MAX_RSA_BITS`` (8192: a huge modulus makes every verification expensive);
* symmetric (``oct``) keys unless the set is inline config (a remote JWKS is public,
  so a shared secret in it would let anyone sign), and ``oct`` keys shorter than
  ``MIN_HMAC_BYTES`` (32, what HS256 needs to be as strong as its hash).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK

logger = logging.getLogger(__name__)

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHM_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
SUPPORTED_ALGORITHMS = (
    RSA_ALGORITHMS
    | frozenset(EC_ALGORITHM_BY_CURVE.values())
    | HMAC_ALGORITHMS
    | frozenset({"EdDSA"})
)
PUBLIC_MEMBERS = frozenset({"kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"})
DEFAULT_MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
MIN_HMAC_BYTES = 32
DEFAULT_MAX_KEYS = 100

_versions = itertools.count(1)


@dataclass(frozen=True)
class Key:
    """One usable verification key."""

    kid: str
    alg: str
    kty: str
    algorithms: frozenset[str]
    material: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class KeySet:
    """The usable keys of one JWKS document; ``version`` is unique per parse."""

    keys: tuple[Key, ...]
    skipped: int = 0
    version: int = field(default_factory=lambda: next(_versions))


class KeySetError(ValueError):
    """A JWKS document is not a JWK set at all."""


def parse_key_set(
    document: str | bytes,
    *,
    allow_symmetric: bool,
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS,
    max_keys: int = DEFAULT_MAX_KEYS,
) -> KeySet:
    """Parse a JWKS document, skipping unusable keys; raise KeySetError if none."""
    try:
        body = json.loads(document)
    except (ValueError, RecursionError) as err:
        raise KeySetError(f"JWKS is not valid JSON: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise KeySetError('JWKS must be a JSON object with a "keys" list')
    if len(body["keys"]) > max_keys:
        raise KeySetError(f"JWKS has more than {max_keys} keys")

    keys = []
    for entry in body["keys"]:
        key = _usable_key(entry, allow_symmetric, min_rsa_bits)
        if key is not None:
            keys.append(key)
    if not keys:
        raise KeySetError("Jwks doesn't have any valid public key")
    return KeySet(tuple(keys), skipped=len(body["keys"]) - len(keys))


def _usable_key(entry: Any, allow_symmetric: bool, min_rsa_bits: int) -> Key | None:
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    kid = entry.get("kid", "")
    alg = entry.get("alg", "")
    if not isinstance(kid, str) or not isinstance(alg, str):
        return None

    algorithms = _algorithms_for(entry, alg, allow_symmetric)
    if not algorithms:
        return None
    material = _material(entry, min(algorithms))
    if material is None:
        return None
    if isinstance(material, rsa.RSAPublicKey) and not (
        min_rsa_bits <= material.key_size <= MAX_RSA_BITS
    ):
        logger.warning("skipping RSA key %r: %d bits", kid, material.key_size)
        return None
    if isinstance(material, bytes) and len(material) < MIN_HMAC_BYTES:
        logger.warning(
            "skipping oct key %r: shorter than %d bytes", kid, MIN_HMAC_BYTES
        )
        return None
    return Key(kid, alg, str(entry["kty"]), algorithms, material)


def _algorithms_for(
    entry: dict[str, Any], alg: str, allow_symmetric: bool
) -> frozenset[str]:
    kty = entry.get("kty")
    if kty == "RSA":
        family = RSA_ALGORITHMS
    elif kty == "EC":
        curve_alg = EC_ALGORITHM_BY_CURVE.get(entry.get("crv", ""))
        family = frozenset({curve_alg}) if curve_alg else frozenset()
    elif kty == "OKP":
        family = frozenset({"EdDSA"}) if entry.get("crv") == "Ed25519" else frozenset()
    elif kty == "oct" and allow_symmetric:
        family = HMAC_ALGORITHMS
    else:
        family = frozenset()

    if alg:
        return frozenset({alg}) & family
    return family


def _material(entry: dict[str, Any], algorithm: str) -> Any:
    public = {k: v for k, v in entry.items() if k in PUBLIC_MEMBERS}
    if entry.get("kty") == "oct":
        public["k"] = entry.get("k")
    try:
        return PyJWK(public, algorithm).key
    except Exception:  # PyJWT raises several types for malformed keys
        return None
