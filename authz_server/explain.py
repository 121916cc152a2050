"""``authz-server explain``: one request through the same pipeline the server runs."""

from __future__ import annotations

import time
from typing import Any

from authz_server.authn.token import CLOCK_SKEW_SECONDS, parse
from authz_server.errors import AuthzError
from authz_server.pipeline import decide
from authz_server.request import Request
from authz_server.snapshot import Snapshot


def explain(snapshot: Snapshot, request: Request) -> dict[str, Any]:
    """Decide ``request`` and describe the decision and the token it carried."""
    now = time.time()
    decision = decide(snapshot, request, now)
    scope = snapshot.scope(request)
    report: dict[str, Any] = {
        "decision": "allow" if decision.allowed else "deny",
        "status": decision.status,
        "reason": decision.reason,
        "message": decision.message,
        "policy": None,
        "rules_applied": [provider.name for provider in scope.providers],
        "policies_applied": [f"{p.action} {p.id}" for p in scope.policies],
    }
    if decision.policy is not None:
        report["policy"] = {
            "policy": decision.policy.policy,
            "rule": decision.policy.rule,
            "action": decision.policy.action,
        }
    if decision.identity is not None:
        report["principal"] = decision.identity.principal
        report["verified_by"] = decision.identity.rule
    report["token"] = _token_facts(request, now)
    report["headers_set"] = [name for name, _ in decision.headers.set]
    report["headers_removed"] = list(decision.headers.remove)
    return report


def _token_facts(request: Request, now: float) -> dict[str, Any] | None:
    header = request.header("authorization") or ""
    if not header.startswith("Bearer "):
        return None
    try:
        jwt = parse(header[len("Bearer ") :].strip())
    except AuthzError as err:
        return {"parsed": False, "error": err.message}
    return {
        "parsed": True,
        "alg": jwt.alg,
        "kid": jwt.kid,
        "iss": jwt.issuer,
        "aud": list(jwt.audiences) if jwt.audiences is not None else None,
        "nbf": jwt.not_before,
        "exp": jwt.expires,
        "now": int(now),
        "clock_skew_seconds": CLOCK_SKEW_SECONDS,
    }


def render(report: dict[str, Any]) -> str:
    """The report as text for people."""
    outcome = f"{report['decision'].upper()} ({report['status']} {report['reason']})"
    lines = [f"decision: {outcome}"]
    if report["message"]:
        lines.append(f"message:  {report['message']}")
    if report.get("principal"):
        lines.append(
            f"principal: {report['principal']} (verified by {report['verified_by']})"
        )
    if report["policy"]:
        policy = report["policy"]
        lines.append(f"deciding policy: {policy['policy']} rule {policy['rule']}")
    lines.append("jwt rules applied: " + (", ".join(report["rules_applied"]) or "none"))
    lines.append(
        "policies applied: " + (", ".join(report["policies_applied"]) or "none")
    )
    token = report["token"]
    if token is None:
        lines.append("token: none in Authorization")
    elif not token["parsed"]:
        lines.append(f"token: not parsable: {token['error']}")
    else:
        lines.append(
            f"token: alg {token['alg']} kid {token['kid'] or '-'} iss {token['iss']} "
            f"aud {token['aud']} nbf {token['nbf']} exp {token['exp']} "
            f"(now {token['now']}, skew {token['clock_skew_seconds']}s)"
        )
    return "\n".join(lines)
