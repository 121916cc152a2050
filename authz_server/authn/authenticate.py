"""Decide who the caller is from the tokens it presents, as Istio's jwtRules do.

The combined requirement of all applicable rules is "valid if present": a request
with no token passes without identity; every presented token must verify. When no
rule verifies the token, the error reported follows Envoy's priority (the last real
failure, else "issuer not configured"). Two deliberate differences, both stricter:

* More than one *distinct* token in one request is rejected (401), instead of
  letting the first rule that succeeds define an undefined principal.
* Output headers of every applicable rule are removed from every request, not only
  those of the rule that was evaluated.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cachetools import LRUCache

from authz_server.authn.extract import (
    Location,
    cookies,
    from_header,
    looks_like_jwt,
    query_params,
)
from authz_server.authn.jwks import KeySource
from authz_server.authn.token import (
    CLOCK_SKEW_SECONDS,
    Jwt,
    check_audience,
    check_time,
    parse,
)
from authz_server.authn.verify import verify_signature
from authz_server.config.model import JwtRule
from authz_server.decision import HeaderChanges, Identity, Trace
from authz_server.errors import (
    AmbiguousTokens,
    AuthzError,
    ClaimHeaderTooLarge,
    IssuerNotConfigured,
    TokenOutOfPlace,
    TokenTooLarge,
)
from authz_server.request import Request
from authz_server.settings import Limits

DEFAULT_SPACE_DELIMITED = ("scope", "permission")
UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
RESULT_CACHE_SIZE = 1_000
SIGNATURE_CACHE_SIZE = 100_000
SIGNATURE_CACHE_SECONDS = 300.0


@dataclass(frozen=True, eq=False)
class Provider:
    """One jwtRule, compiled: where its tokens are and how they verify."""

    name: str
    rule: JwtRule
    locations: tuple[Location, ...]
    audiences: frozenset[str]
    space_delimited: frozenset[str]
    keys: KeySource

    @cached_property
    def owned_headers(self) -> tuple[str, ...]:
        names = [self.rule.output_payload_to_header]
        names += [entry.header for entry in self.rule.output_claim_to_headers]
        return tuple(name for name in names if name)


@dataclass(frozen=True)
class Authentication:
    """The outcome of a successful authentication step."""

    identity: Identity | None
    headers: HeaderChanges


@dataclass
class CacheStats:
    """Verified-token cache counters, shared across config generations."""

    hits: int = 0
    misses: int = 0


@dataclass(frozen=True)
class _Found:
    token: str
    locations: tuple[Location, ...]


@dataclass(frozen=True)
class _Verified:
    """A token that verified under ``provider``: what a repeat request reuses."""

    provider: Provider
    identity: Identity
    to_set: tuple[tuple[str, str], ...]
    not_before: int | None
    expires: int | None
    key_version: int


class Authenticator:
    """Verifies requests against a list of providers (one config generation).

    Two caches, both per config generation (a reload starts empty ones) and both
    checked against the key set in use, so a key rotation invalidates them:

    * recent results: the verified identity and headers of the
      ``RESULT_CACHE_SIZE`` most recent tokens, so a repeated token costs no
      parsing; its time window is checked again on every use, so a cached token
      never outlives its ``exp``;
    * verified signatures: a SHA-256 digest of rule and token for up to
      ``SIGNATURE_CACHE_SIZE`` tokens, each for ``SIGNATURE_CACHE_SECONDS``
      (about 240 bytes apiece), so any token seen again costs parsing but no
      signature check.
    """

    def __init__(
        self, limits: Limits | None = None, stats: CacheStats | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.stats = stats or CacheStats()
        self._results: LRUCache[tuple[object, str], _Verified] = LRUCache(
            RESULT_CACHE_SIZE
        )
        self._signatures: LRUCache[bytes, tuple[int, float]] = LRUCache(
            SIGNATURE_CACHE_SIZE
        )

    def authenticate(
        self,
        providers: Sequence[Provider],
        request: Request,
        now: float,
        trace: Trace | None = None,
    ) -> Authentication:
        """Return the caller's identity (or none); raise Denied on a bad token."""
        owned = _owned_headers(providers, request)
        if _is_cors_preflight(request):
            _note(trace, "CORS preflight: token checks skipped")
            return Authentication(None, HeaderChanges(remove=owned))

        found = [_find(provider, request) for provider in providers]
        tokens = {item.token for item in found if item is not None}
        if not tokens:
            _note(trace, f"no token found ({len(providers)} jwt rules apply)")
            return Authentication(None, HeaderChanges(remove=owned))
        if len(tokens) > 1:
            raise AmbiguousTokens()
        token = tokens.pop()
        if len(token) > self.limits.max_token_bytes:
            raise TokenTooLarge()

        key = (tuple(providers), token)
        cached = self._results.get(key)
        if cached is not None and _still_valid(cached, now):
            self.stats.hits += 1
            _note(trace, f"{cached.provider.name}: verified (cached)")
            locations = _locations_of(cached.provider, providers, found)
            changes = _changes(cached.provider, cached.to_set, locations, owned)
            return Authentication(cached.identity, changes)

        limits = self.limits
        jwt = parse(
            token, max_depth=limits.max_json_depth, max_members=limits.max_json_members
        )
        self.stats.misses += 1
        if trace is not None:
            trace.append(_describe(jwt, found, now))
        errors: list[AuthzError] = []
        for provider, item in zip(providers, found, strict=True):
            if item is None:
                continue
            try:
                verified = self._verify(provider, jwt, now)
            except AuthzError as err:
                _note(trace, f"{provider.name}: {err.message}")
                errors.append(err)
                continue
            _note(trace, f"{provider.name}: verified")
            self._results[key] = verified
            changes = _changes(provider, verified.to_set, item.locations, owned)
            return Authentication(verified.identity, changes)
        raise _reported_error(errors)

    def _verify(self, provider: Provider, jwt: Jwt, now: float) -> _Verified:
        if provider.rule.issuer and jwt.issuer != provider.rule.issuer:
            raise IssuerNotConfigured()
        check_time(jwt, now)
        check_audience(jwt, provider.audiences)

        digest = hashlib.sha256(f"{provider.name}\0{jwt.raw}".encode()).digest()
        seen = self._signatures.get(digest)
        current = _current_version(provider)
        if seen is not None and seen[0] == current and seen[1] > time.monotonic():
            version = seen[0]
        else:
            version = verify_signature(jwt, provider.keys).version
            expiry = time.monotonic() + SIGNATURE_CACHE_SECONDS
            self._signatures[digest] = (version, expiry)

        to_set = _outputs(provider, jwt, self.limits.max_claim_header_bytes)
        identity = _identity(provider, jwt)
        return _Verified(
            provider, identity, to_set, jwt.not_before, jwt.expires, version
        )


def _note(trace: Trace | None, step: str) -> None:
    if trace is not None:
        trace.append(step)


def _describe(jwt: Jwt, found: Sequence[_Found | None], now: float) -> str:
    places = sorted(
        {f"{loc.kind} {loc.name}" for item in found if item for loc in item.locations}
    )
    return (
        f"token at {', '.join(places)}: alg {jwt.alg}, kid {jwt.kid or '-'}, "
        f"iss {jwt.issuer}, aud {list(jwt.audiences or [])}, nbf {jwt.not_before}, "
        f"exp {jwt.expires}, now {int(now)} (clock skew {CLOCK_SKEW_SECONDS}s)"
    )


def _still_valid(verified: _Verified, now: float) -> bool:
    """Whether a cached result may be reused: in its time window, same keys."""
    if verified.not_before is not None:
        if now + CLOCK_SKEW_SECONDS < verified.not_before:
            return False
    if verified.expires and now > verified.expires + CLOCK_SKEW_SECONDS:
        return False
    return _current_version(verified.provider) == verified.key_version


def _locations_of(
    provider: Provider, providers: Sequence[Provider], found: Sequence[_Found | None]
) -> tuple[Location, ...]:
    item = found[list(providers).index(provider)]
    return item.locations if item is not None else ()


def _current_version(provider: Provider) -> int | None:
    try:
        return provider.keys.keys().version
    except AuthzError:
        return None


def _reported_error(errors: list[AuthzError]) -> AuthzError:
    real = [err for err in errors if not isinstance(err, IssuerNotConfigured)]
    if errors and errors[0] in real:
        return errors[0]
    return real[-1] if real else IssuerNotConfigured()


def _is_cors_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and bool(request.header("origin"))
        and bool(request.header("access-control-request-method"))
    )


def _find(provider: Provider, request: Request) -> _Found | None:
    tokens: dict[str, list[Location]] = {}
    params: dict[str, str] | None = None
    jar: dict[str, str] | None = None
    for location in provider.locations:
        token: str | None = None
        if location.kind == "header":
            value = request.header(location.name)
            token = None if value is None else from_header(value, location.prefix)
            if value is not None and token is None and looks_like_jwt(value):
                raise TokenOutOfPlace()
        elif location.kind == "param":
            if "?" not in request.raw_path:
                continue
            params = query_params(request.query) if params is None else params
            token = params.get(location.name)
        else:
            jar = cookies(request.header("cookie") or "") if jar is None else jar
            token = jar.get(location.name)
        if token:
            tokens.setdefault(token, []).append(location)

    if not tokens:
        return None
    if len(tokens) > 1:
        raise AmbiguousTokens()
    token, locations = tokens.popitem()
    return _Found(token, tuple(locations))


def _owned_headers(providers: Sequence[Provider], request: Request) -> tuple[str, ...]:
    """Headers only we may set: every rule's outputs, and client look-alikes of them."""
    owned = {name for provider in providers for name in provider.owned_headers}
    look_alikes = {
        name
        for name in request.headers
        if name not in owned and name.replace("_", "-") in owned
    }
    return tuple(sorted(owned | look_alikes))


def _identity(provider: Provider, jwt: Jwt) -> Identity:
    claims = dict(jwt.payload)
    for name in provider.space_delimited:
        value = claims.get(name)
        if isinstance(value, str):
            claims[name] = [part for part in value.split(" ") if part]
    subject = jwt.payload.get("sub", "")
    return Identity(jwt.issuer or "", subject, claims, provider.name)


def _outputs(
    provider: Provider, jwt: Jwt, max_claim_bytes: int
) -> tuple[tuple[str, str], ...]:
    """The headers a verified token sets: its payload and its configured claims."""
    rule = provider.rule
    to_set: dict[str, str] = {}
    if rule.output_payload_to_header:
        to_set[rule.output_payload_to_header] = jwt.payload_segment
    for entry in rule.output_claim_to_headers:
        value = claim_header_value(jwt.payload, entry.claim)
        if value is not None and len(value.encode()) > max_claim_bytes:
            raise ClaimHeaderTooLarge()
        if value is not None:
            to_set[entry.header] = value
    return tuple(to_set.items())


def _changes(
    provider: Provider,
    to_set: tuple[tuple[str, str], ...],
    locations: tuple[Location, ...],
    owned: tuple[str, ...],
) -> HeaderChanges:
    """Set the token's headers; remove other owned ones and (unless forwarded)
    the headers and query parameters the token came in."""
    set_names = {name for name, _ in to_set}
    remove = [name for name in owned if name not in set_names]
    params: list[str] = []
    if not provider.rule.forward_original_token:
        remove += [loc.name for loc in locations if loc.kind == "header"]
        params += [loc.name for loc in locations if loc.kind == "param"]
    return HeaderChanges(to_set, tuple(dict.fromkeys(remove)), tuple(params))


def claim_header_value(payload: dict[str, Any], claim: str) -> str | None:
    """A claim as Envoy writes it into a header, or None when it is not written.

    The claim name is a ``.``-separated path into nested objects. Strings go as they
    are, booleans as ``true``/``false``, whole numbers in [0, 2^64) as integers and
    other numbers with six decimals. Objects, lists, null, empty strings, and values
    holding control characters (which could split a header) are not written.
    """
    value: Any = payload
    for part in claim.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]

    text = _header_text(value)
    if not text or UNSAFE_HEADER_CHARS.search(text):
        return None
    return text


def _header_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        if float(value).is_integer() and 0 <= value < 2**64:
            return str(int(value))
        return f"{float(value):f}"
    return None
