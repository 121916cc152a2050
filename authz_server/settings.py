"""Server settings: defaults in one place, with the unit in each name."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GRPC_LISTEN = "127.0.0.1:9001"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9002"
DEFAULT_ROOT_NAMESPACE = "istio-system"


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
    max_token_bytes: int = 64 * 1024
    jwks_refresh_seconds: float = 20 * 60
    jwks_miss_interval_seconds: float = 30.0
    jwks_max_stale_seconds: float = 24 * 3600
    jwks_ca_file: str | None = None
    startup_deadline_seconds: float = 30.0
    watch_interval_seconds: float = 1.0
    grace_seconds: float = 5.0
