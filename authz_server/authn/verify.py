"""Signature verification against an issuer's key set.

Keys are tried as Envoy does: a key is skipped when both it and the token carry a
``kid`` and they differ, or when the key declares an ``alg`` other than the token's.
If no key is left the token is rejected with "Jwks doesn't have key to match kid or
alg from Jwt" (after one rate-limited refetch of a remote key set); otherwise every
remaining key whose type can verify the token's algorithm is tried. The algorithm is
therefore bounded by the key, never chosen by the token alone.
"""

from __future__ import annotations

from jwt.algorithms import Algorithm, get_default_algorithms

from authz_server.authn.jwks import KeySource
from authz_server.authn.keys import SUPPORTED_ALGORITHMS, Key, KeySet
from authz_server.authn.token import Jwt
from authz_server.errors import KeyNotFound, KeysUnavailable, SignatureInvalid

ALGORITHMS: dict[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in SUPPORTED_ALGORITHMS
}
ED25519_SIGNATURE_BYTES = 64


def verify_signature(jwt: Jwt, source: KeySource) -> KeySet:
    """Verify ``jwt`` with ``source``'s keys; return the key set that verified it."""
    try:
        key_set = source.keys()
    except KeysUnavailable:
        refetched = source.refetch_on_miss()
        if refetched is None:
            raise
        key_set = refetched

    try:
        _verify_with(jwt, key_set)
    except KeyNotFound:
        newer = source.refetch_on_miss()
        if newer is None or newer.version == key_set.version:
            raise
        _verify_with(jwt, newer)
        return newer
    return key_set


def _verify_with(jwt: Jwt, key_set: KeySet) -> None:
    candidates = [key for key in key_set.keys if _matches(key, jwt)]
    if not candidates:
        raise KeyNotFound()

    algorithm = ALGORITHMS[jwt.alg]
    for key in candidates:
        if jwt.alg in key.algorithms and _verifies(algorithm, jwt, key):
            return
    if jwt.alg == "EdDSA" and len(jwt.signature) != ED25519_SIGNATURE_BYTES:
        raise SignatureInvalid("Jwt ED25519 signature is wrong length")
    raise SignatureInvalid()


def _matches(key: Key, jwt: Jwt) -> bool:
    if jwt.kid and key.kid and jwt.kid != key.kid:
        return False
    return not key.alg or key.alg == jwt.alg


def _verifies(algorithm: Algorithm, jwt: Jwt, key: Key) -> bool:
    try:
        return bool(algorithm.verify(jwt.signing_input, key.material, jwt.signature))
    except Exception:  # a hostile signature must never escape as an error
        return False
