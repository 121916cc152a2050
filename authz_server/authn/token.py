"""Parse a compact JWS and check its claims, in the order Envoy's jwt_authn does.

Every failure raises the error whose message is the one Envoy users already know.
The signature is checked last, by :mod:`authz_server.authn.verify`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from authz_server.authn.keys import SUPPORTED_ALGORITHMS
from authz_server.errors import (
    AudienceNotAllowed,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenTooComplex,
    UnsupportedAlgorithm,
    UnsupportedHeader,
)

CLOCK_SKEW_SECONDS = 60
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_MEMBERS = 10_000
MAX_TIME_CLAIM = 2**64
BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
STRING_CLAIMS = ("iss", "sub", "jti")
TIME_CLAIMS = ("iat", "nbf", "exp")


@dataclass(frozen=True)
class Jwt:
    """A parsed, not yet verified token."""

    raw: str
    header: dict[str, Any]
    payload: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes
    alg: str
    kid: str
    issuer: str | None
    audiences: tuple[str, ...] | None
    not_before: int | None
    expires: int | None


def parse(
    token: str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Jwt:
    """Parse ``token``; raise TokenMalformed (or a sibling) naming what is wrong.

    The header and payload JSON may nest at most ``max_depth`` levels and hold at
    most ``max_members`` object members and array elements in all
    (TokenTooComplex otherwise).
    """
    parts = [part for part in token.split(".") if part]
    if len(parts) != 3 or token.count(".") != 2:
        raise TokenMalformed()
    header_segment, payload_segment, signature_segment = parts

    header = _json_object(header_segment, "header")
    _check_shape(header, max_depth, max_members)
    alg, kid = _header_fields(header)
    payload = _json_object(payload_segment, "payload")
    _check_shape(payload, max_depth, max_members)
    times = {name: _time_claim(payload, name) for name in TIME_CLAIMS}
    signature = _decode(
        signature_segment, "Jwt signature is an invalid Base64url encoded"
    )

    return Jwt(
        raw=token,
        header=header,
        payload=payload,
        payload_segment=payload_segment,
        signing_input=f"{header_segment}.{payload_segment}".encode("ascii"),
        signature=signature,
        alg=alg,
        kid=kid,
        issuer=_string_claims(payload),
        audiences=_audiences(payload),
        not_before=times["nbf"],
        expires=times["exp"],
    )


def _decode(segment: str, message: str) -> bytes:
    if not BASE64URL.fullmatch(segment):
        raise TokenMalformed(message)
    unpadded = segment.rstrip("=")
    try:
        data = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformed(message) from None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != unpadded:
        raise TokenMalformed(message)  # non-canonical: trailing bits set
    return data


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(segment: str, part: str) -> dict[str, Any]:
    data = _decode(segment, f"Jwt {part} is an invalid Base64url encoded")
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        raise TokenMalformed(f"Jwt {part} is an invalid JSON") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"Jwt {part} is an invalid JSON")
    return value


def _check_shape(value: Any, max_depth: int, max_members: int) -> None:
    members = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        members += len(children)
        if depth > max_depth or members > max_members:
            raise TokenTooComplex()
        pending.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list)
        )


def _header_fields(header: dict[str, Any]) -> tuple[str, str]:
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise UnsupportedAlgorithm(
            "Jwt header [alg] field is required and must be a string"
        )
    if alg not in SUPPORTED_ALGORITHMS:
        raise UnsupportedAlgorithm()
    kid = header.get("kid", "")
    if not isinstance(kid, str):
        raise TokenMalformed("Jwt header [kid] field is not a string")
    # RFC 7515 4.1.11 / RFC 7797: we understand no critical extension, and an
    # unencoded payload would change what the signature covers.
    if "crit" in header or "b64" in header:
        raise UnsupportedHeader("Jwt header [crit] or [b64] is not supported")
    return alg, kid


def _string_claims(payload: dict[str, Any]) -> str | None:
    for name in STRING_CLAIMS:
        if name in payload and not isinstance(payload[name], str):
            raise TokenMalformed(f"Jwt payload [{name}] field is not a string")
    issuer = payload.get("iss")
    return issuer if isinstance(issuer, str) else None


def _time_claim(payload: dict[str, Any], name: str) -> int | None:
    if name not in payload:
        return None
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenMalformed(f"Jwt payload [{name}] field is not an integer")
    if not math.isfinite(value) or not 0 <= value < MAX_TIME_CLAIM:
        raise TokenMalformed(
            f"Jwt payload [{name}] field is not a positive 64 bit integer"
        )
    return int(value)


def _audiences(payload: dict[str, Any]) -> tuple[str, ...] | None:
    if "aud" not in payload:
        return None
    aud = payload["aud"]
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return tuple(aud)
    raise TokenMalformed("Jwt payload [aud] field is not a string or string list")


def check_time(jwt: Jwt, now: float) -> None:
    """Reject a token outside its validity window, allowing 60 s of clock skew.

    ``iat`` is never compared with the clock, and a missing or zero ``exp`` means
    the token does not expire (both as in Envoy).
    """
    if jwt.not_before is not None and now + CLOCK_SKEW_SECONDS < jwt.not_before:
        raise TokenNotYetValid()
    if jwt.expires and now > jwt.expires + CLOCK_SKEW_SECONDS:
        raise TokenExpired()


def sanitize_audience(audience: str) -> str:
    """Drop one leading ``http://`` or ``https://`` and one trailing ``/``."""
    for scheme in ("http://", "https://"):
        if audience.startswith(scheme):
            audience = audience[len(scheme) :]
            break
    return audience[:-1] if audience.endswith("/") else audience


def check_audience(jwt: Jwt, allowed: frozenset[str]) -> None:
    """Pass when ``allowed`` is empty or holds one of the token's audiences."""
    if not allowed:
        return
    presented = {sanitize_audience(aud) for aud in jwt.audiences or ()}
    if not presented & allowed:
        raise AudienceNotAllowed()
