"""Token locations and extraction, as Envoy's jwt_authn extractor does it.

* A rule that sets none of ``fromHeaders``, ``fromParams`` and ``fromCookies`` reads
  ``Authorization: Bearer <token>`` and the ``access_token`` query parameter.
* A header prefix is searched for anywhere in the value (case-sensitive); when it is
  absent the header carries *no* token. The token starts at the first base64url or
  ``.`` character after the prefix and runs to the end of the value.
* Stricter than Envoy: a header value that holds something shaped like a JWT but
  not behind the prefix (``bearer <jwt>``, a bare ``<jwt>``) is reported by
  :func:`looks_like_jwt`, and rejected, instead of reaching the upstream unverified.
* A query parameter is the first occurrence, URL-decoded; a cookie is matched by
  exact name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from authz_server.config.model import JwtRule

TOKEN_START = re.compile(r"[A-Za-z0-9_.\-]")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.")
MAX_QUERY_PARAMS = 200
DEFAULT_HEADER = "authorization"
DEFAULT_PREFIX = "Bearer "
DEFAULT_PARAM = "access_token"


@dataclass(frozen=True)
class Location:
    """Where a token may be: a header (with prefix), a query parameter or a cookie."""

    kind: Literal["header", "param", "cookie"]
    name: str
    prefix: str = ""


def locations_for(rule: JwtRule) -> tuple[Location, ...]:
    """The locations a rule reads, defaults included."""
    found = [Location("header", h.name.lower(), h.prefix) for h in rule.from_headers]
    found += [Location("param", name) for name in rule.from_params]
    found += [Location("cookie", name) for name in rule.from_cookies]
    if not found:
        found = [
            Location("header", DEFAULT_HEADER, DEFAULT_PREFIX),
            Location("param", DEFAULT_PARAM),
        ]
    return tuple(found)


def from_header(value: str, prefix: str) -> str | None:
    """The token in one header value, or None when the prefix is absent."""
    if not prefix:
        return value
    start = value.find(prefix)
    if start < 0:
        return None
    match = TOKEN_START.search(value, start + len(prefix))
    return value[match.start() :] if match else None


def looks_like_jwt(value: str) -> bool:
    """Whether ``value`` holds a compact JWS: a JSON header segment and a dot."""
    return JWT_SHAPE.search(value) is not None


def query_params(query: str) -> dict[str, str]:
    """First value of each query parameter, URL-decoded (bounded in count)."""
    params: dict[str, str] = {}
    for index, pair in enumerate(query.split("&")):
        if index >= MAX_QUERY_PARAMS:
            break
        name, _, value = pair.partition("=")
        params.setdefault(unquote(name), unquote(value))
    return params


def cookies(header: str) -> dict[str, str]:
    """First value of each cookie in a ``Cookie`` header, surrounding quotes removed."""
    jar: dict[str, str] = {}
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            jar.setdefault(name.strip(), value)
    return jar
