"""``authz-server explain``: one request through the pipeline the server runs,
with every step it took written down."""

from __future__ import annotations

import time
from typing import Any

from authz_server.decision import Trace
from authz_server.pipeline import decide
from authz_server.request import Request
from authz_server.snapshot import Snapshot


def explain(snapshot: Snapshot, request: Request) -> dict[str, Any]:
    """Decide ``request`` and report the decision and each check made."""
    trace: Trace = []
    decision = decide(snapshot, request, time.time(), trace)
    scope = snapshot.scope(request)
    report: dict[str, Any] = {
        "decision": "allow" if decision.allowed else "deny",
        "status": decision.status,
        "reason": decision.reason,
        "message": decision.message,
        "principal": decision.identity.principal if decision.identity else None,
        "verified_by": decision.identity.rule if decision.identity else None,
        "policy": None,
        "jwt_rules": [provider.name for provider in scope.providers],
        "policies": [f"{p.action} {p.id}" for p in scope.policies],
        "steps": trace,
        "headers_set": [name for name, _ in decision.headers.set],
        "headers_removed": list(decision.headers.remove),
    }
    if decision.policy is not None:
        report["policy"] = {
            "policy": decision.policy.policy,
            "rule": decision.policy.rule,
            "action": decision.policy.action,
        }
    return report


def render(report: dict[str, Any]) -> str:
    """The report as text for people."""
    outcome = f"{report['decision'].upper()} {report['status']} {report['reason']}"
    lines = [f"decision: {outcome}"]
    if report["message"]:
        lines.append(f"message: {report['message']}")
    if report["principal"]:
        lines.append(f"principal: {report['principal']} (by {report['verified_by']})")
    if report["policy"]:
        policy = report["policy"]
        lines.append(f"decided by: {policy['policy']} rule {policy['rule']}")
    lines.append("jwt rules: " + (", ".join(report["jwt_rules"]) or "none"))
    lines.append("policies: " + (", ".join(report["policies"]) or "none"))
    lines.append("steps:")
    lines += [f"  - {step}" for step in report["steps"]]
    if report["headers_set"]:
        lines.append("headers set: " + ", ".join(report["headers_set"]))
    return "\n".join(lines)
