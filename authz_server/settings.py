"""Server settings: defaults in one place, with the unit in each name."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_GRPC_LISTEN = "127.0.0.1:9001"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9002"
DEFAULT_ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class Limits:
    """Bounds on what a request or a key server can make us parse.

    Each one has its own deny reason when exceeded (see ``errors.py``), and none
    is ever a crash: ``max_header_bytes`` (any request header, 431
    ``header_too_large``), ``max_token_bytes`` (401 ``jwt_too_large``),
    ``max_json_depth`` and ``max_json_members`` (nesting and total members of a
    token's header or payload, 401 ``jwt_too_complex``),
    ``max_claim_header_bytes`` (a claim copied into a header, 401
    ``claim_header_too_large``), ``max_jwks_bytes`` and ``max_jwks_keys`` (a
    JWKS response; the fetch fails and counts as an error).
    """

    max_header_bytes: int = 96 * 1024
    max_token_bytes: int = 64 * 1024
    max_json_depth: int = 32
    max_json_members: int = 10_000
    max_claim_header_bytes: int = 16 * 1024
    max_jwks_bytes: int = 512 * 1024
    max_jwks_keys: int = 100


@dataclass(frozen=True)
class Settings:
    """How the server runs; everything about *what* it decides lives in config files.

    ``admin_listen`` is off ("") for a server built in code; ``authz-server serve``
    turns it on at ``DEFAULT_ADMIN_LISTEN`` unless told otherwise.
    ``trusted_proxies`` is the number of proxies in front of Envoy whose
    ``x-forwarded-for`` entries are trusted for ``remote.ip`` / ``remoteIpBlocks``
    (Istio's ``numTrustedProxies``); with 0 the remote address is the peer address.
    """

    grpc_listen: str = DEFAULT_GRPC_LISTEN
    admin_listen: str = ""
    http_listen: str = ""
    http_original: str = "auto"
    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    trusted_proxies: int = 0
    limits: Limits = field(default_factory=Limits)
    jwks_refresh_seconds: float = 20 * 60
    jwks_miss_interval_seconds: float = 30.0
    jwks_max_stale_seconds: float = 24 * 3600
    jwks_ca_file: str | None = None
    startup_deadline_seconds: float = 30.0
    watch_interval_seconds: float = 1.0
    grace_seconds: float = 5.0


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a (host, port) pair."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
