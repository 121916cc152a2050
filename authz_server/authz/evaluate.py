"""Evaluate the applicable policies in Istio's order.

1. AUDIT policies that match mark the request (no effect on the decision).
2. A matching enforced DENY policy denies.
3. With no enforced ALLOW policy the request is allowed; otherwise one of them
   must match.

Dry-run policies (annotation ``istio.io/dry-run``) are evaluated the same way but
only recorded; they never change the outcome, and dry-run ALLOW policies do not
count as "an ALLOW policy exists".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authz_server.authz.policy import CompiledPolicy, Context
from authz_server.decision import PolicyMatch, Trace
from authz_server.errors import PolicyDenied


@dataclass(frozen=True)
class Verdict:
    """An allow, with the policy that allowed it (if any) and what was recorded."""

    allowed_by: PolicyMatch | None
    dry_run: tuple[PolicyMatch, ...]
    audit: tuple[PolicyMatch, ...]


def evaluate(
    policies: Sequence[CompiledPolicy], context: Context, trace: Trace | None = None
) -> Verdict:
    """Allow (return a Verdict) or raise PolicyDenied naming the deciding rule."""
    if trace is not None:
        _explain(policies, context, trace)
    audit = _matches(policies, context, "AUDIT", dry_run=False)
    dry_run = _matches(policies, context, "DENY", dry_run=True)
    dry_run += _matches(policies, context, "ALLOW", dry_run=True)

    for policy in policies:
        if policy.action == "DENY" and not policy.dry_run:
            rule = policy.first_match(context)
            if rule is not None:
                raise _denied(policy.id, rule, dry_run, audit)

    allow = [p for p in policies if p.action == "ALLOW" and not p.dry_run]
    if not allow:
        return Verdict(None, dry_run, audit)
    for policy in allow:
        rule = policy.first_match(context)
        if rule is not None:
            return Verdict(PolicyMatch(policy.id, rule, "ALLOW"), dry_run, audit)
    raise _denied(None, None, dry_run, audit)


def _explain(
    policies: Sequence[CompiledPolicy], context: Context, trace: Trace
) -> None:
    if not policies:
        trace.append("no AuthorizationPolicy applies")
    for policy in policies:
        mode = " (dry-run)" if policy.dry_run else ""
        if not policy.rules:
            trace.append(
                f"{policy.action} {policy.id}{mode}: no rules, matches nothing"
            )
        for index, rule in enumerate(policy.rules):
            parts = rule.explain(context)
            verdict = "matches" if rule(context) else "does not match"
            detail = "; ".join(
                f"{label} {'yes' if ok else 'no'}" for label, ok in parts
            )
            trace.append(
                f"{policy.action} {policy.id}{mode} rule {index} {verdict}"
                + (f": {detail}" if detail else " (empty rule)")
            )


def _matches(
    policies: Sequence[CompiledPolicy], context: Context, action: str, *, dry_run: bool
) -> tuple[PolicyMatch, ...]:
    found = []
    for policy in policies:
        if policy.action == action and policy.dry_run == dry_run:
            rule = policy.first_match(context)
            if rule is not None:
                found.append(PolicyMatch(policy.id, rule, action, dry_run))
    return tuple(found)


def _denied(
    policy: str | None,
    rule: int | None,
    dry_run: tuple[PolicyMatch, ...],
    audit: tuple[PolicyMatch, ...],
) -> PolicyDenied:
    error = PolicyDenied(policy, rule)
    error.dry_run = dry_run
    error.audit = audit
    return error
