"""The result types every step shares: who the caller is, and what to answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Trace = list[str]
"""Steps of one decision in words, collected only for ``authz-server explain``."""


@dataclass(frozen=True)
class Identity:
    """The verified token's claims, as AuthorizationPolicy sees them.

    ``claims`` is the payload after Istio's normalisation (``scope``, ``permission``
    and any ``spaceDelimitedClaims`` split on spaces). ``rule`` names the jwtRule
    that verified the token, as ``namespace/name spec.jwtRules[i]``.
    """

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    rule: str
    memo: dict[str, Any] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    """Encodings of this identity that adapters build once and reuse (a verified
    token's Identity is shared by every request that presents it)."""

    @property
    def principal(self) -> str:
        return f"{self.issuer}/{self.subject}"


@dataclass(frozen=True)
class HeaderChanges:
    """Header mutations for the upstream request.

    ``set`` overwrites (never appends); ``remove`` never names a header in ``set``.
    """

    set: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()
    remove_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyMatch:
    """A policy rule that matched: ``policy`` is ``namespace/name``."""

    policy: str
    rule: int
    action: str
    dry_run: bool = False


@dataclass(frozen=True)
class Decision:
    """Allow or deny, with everything the response and the log line need."""

    allowed: bool
    status: int
    reason: str
    message: str = ""
    identity: Identity | None = None
    headers: HeaderChanges = field(default_factory=HeaderChanges)
    policy: PolicyMatch | None = None
    dry_run: tuple[PolicyMatch, ...] = ()
    audit: tuple[PolicyMatch, ...] = ()
