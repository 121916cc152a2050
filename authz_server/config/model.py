"""Istio's security resources as typed, immutable objects.

Field names follow the Istio API (``security.istio.io`` v1 / v1beta1) in snake case.
Values are validated for shape here; what they mean is compiled by ``authn`` and
``authz``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["ALLOW", "DENY", "AUDIT"]


@dataclass(frozen=True)
class Origin:
    """Where a resource was read from, for error messages and decision logs."""

    file: str
    document: int
    name: str
    namespace: str

    @property
    def policy_id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Selector:
    """``selector.matchLabels``; ``None`` labels means the resource has no selector."""

    match_labels: dict[str, str] | None = None


@dataclass(frozen=True)
class JwtHeader:
    name: str
    prefix: str = ""


@dataclass(frozen=True)
class ClaimToHeader:
    header: str
    claim: str


@dataclass(frozen=True)
class JwtRule:
    """One ``spec.jwtRules[]`` entry; ``field_path`` locates it for error messages."""

    field_path: str
    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: tuple[JwtHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str = ""
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    forward_original_token: bool = False
    timeout_seconds: float = 5.0
    space_delimited_claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestAuthentication:
    origin: Origin
    selector: Selector
    jwt_rules: tuple[JwtRule, ...]


@dataclass(frozen=True)
class Condition:
    """One ``when[]`` entry."""

    field_path: str
    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One ``rules[]`` entry.

    ``sources`` and ``operations`` map an Istio field name (``principals``,
    ``notPaths``, ...) to its values, one mapping per ``from[]`` / ``to[]`` entry.
    """

    field_path: str
    sources: tuple[dict[str, tuple[str, ...]], ...] = ()
    operations: tuple[dict[str, tuple[str, ...]], ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class AuthorizationPolicy:
    origin: Origin
    selector: Selector
    action: Action
    rules: tuple[Rule, ...]
    dry_run: bool = False


@dataclass(frozen=True)
class Config:
    """Everything read from the ``--config`` paths."""

    request_authentications: tuple[RequestAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    files: tuple[str, ...] = field(default=())
