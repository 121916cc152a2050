"""One decision: attributes, authenticate, authorize, in that order.

Both protocol adapters and ``authz-server explain`` call :func:`decide`; nothing
else decides. Every error becomes a deny: the ones we raise on purpose carry their
reason and status, anything unexpected is an ``internal_error`` 403.
"""

from __future__ import annotations

import logging
import time

from authz_server.authz.evaluate import evaluate
from authz_server.authz.paths import views
from authz_server.authz.policy import Context
from authz_server.decision import (
    Decision,
    HeaderChanges,
    Identity,
    PolicyMatch,
    Trace,
)
from authz_server.errors import AuthzError, HeaderTooLarge, InternalFault, PolicyDenied
from authz_server.request import Request
from authz_server.snapshot import Snapshot

logger = logging.getLogger(__name__)


def decide(
    snapshot: Snapshot,
    request: Request,
    now: float | None = None,
    trace: Trace | None = None,
) -> Decision:
    """Decide ``request`` under ``snapshot``; never raises. ``trace`` collects
    the steps in words when given (``authz-server explain``)."""
    now = time.time() if now is None else now
    try:
        return _decide(snapshot, request, now, trace)
    except AuthzError as err:
        return denied(err)
    except Exception:
        logger.exception(
            "unexpected error while deciding", extra={"id": request.request_id}
        )
        return denied(InternalFault())


def _decide(
    snapshot: Snapshot, request: Request, now: float, trace: Trace | None
) -> Decision:
    _check_header_sizes(request, snapshot.settings.limits.max_header_bytes)
    paths = views(request.path)
    scope = snapshot.scope(request)
    authn = snapshot.authenticator.authenticate(scope.providers, request, now, trace)

    context = Context(request, authn.identity, paths, remote_ip(request, snapshot))
    try:
        verdict = evaluate(scope.policies, context, trace)
    except PolicyDenied as err:
        return denied(err, identity=authn.identity)

    return Decision(
        allowed=True,
        status=200,
        reason="allowed",
        identity=authn.identity,
        headers=authn.headers,
        policy=verdict.allowed_by,
        dry_run=verdict.dry_run,
        audit=verdict.audit,
    )


def denied(error: AuthzError, *, identity: Identity | None = None) -> Decision:
    """The deny decision for ``error``."""
    policy = None
    dry_run: tuple[PolicyMatch, ...] = ()
    audit: tuple[PolicyMatch, ...] = ()
    if isinstance(error, PolicyDenied):
        if error.policy is not None and error.rule is not None:
            policy = PolicyMatch(error.policy, error.rule, "DENY")
        dry_run, audit = error.dry_run, error.audit
    return Decision(
        allowed=False,
        status=error.status,
        reason=error.reason,
        message=error.message,
        identity=identity,
        headers=HeaderChanges(),
        policy=policy,
        dry_run=dry_run,
        audit=audit,
    )


def _check_header_sizes(request: Request, limit: int) -> None:
    for value in request.headers.values():
        if len(value) > limit:
            raise HeaderTooLarge()


def remote_ip(request: Request, snapshot: Snapshot) -> str:
    """The client address: the peer, or the trusted ``x-forwarded-for`` entry."""
    hops = snapshot.settings.trusted_proxies
    forwarded = request.header("x-forwarded-for")
    if hops <= 0 or not forwarded:
        return request.source_ip
    entries = [entry.strip() for entry in forwarded.split(",")]
    return entries[-hops] if len(entries) >= hops else request.source_ip
