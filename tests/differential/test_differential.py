"""The same requests through Envoy's native jwt_authn + rbac and through authz-server.

For each policy of :data:`diff_policies.POLICIES`, every request of
:func:`diff_requests.requests_for` goes to the native Envoy's listener for that
policy and to the ext_authz stack loaded with the policy's Istio YAML. Status codes
must agree, except for the disagreements listed in :data:`diff_expected.EXPECTED`,
each of which names the rule of the spec (``/work/shared/ISTIO-SEMANTICS.md``) or
the README row ("Where we differ from Istio on purpose") that justifies it.
"""

from __future__ import annotations

import http.client
from collections.abc import Collection

import pytest
from diff_expected import EXPECTED
from diff_policies import POLICIES
from diff_requests import requests_for
from diff_setup import Keys, Native, istio_yaml
from harness import Stack, send_request

from authz_server.demo.envoy_proc import validate

POLICY_NAMES = [policy.name for policy in POLICIES]


def status_of(
    port: int, method: str, target: str, headers: list[tuple[str, str]]
) -> int:
    """The response status, or 0 when the connection closed without one."""
    try:
        status, _, _ = send_request(port, method, target, headers)
    except (http.client.HTTPException, OSError):
        return 0
    return status


def test_native_config_validates(native: Native) -> None:
    ok, output = validate(native.config_path)
    assert ok, output


def test_enough_policies_and_requests() -> None:
    counts = {name: len(requests_for(name)) for name in POLICY_NAMES}
    assert len(counts) >= 12
    assert sum(counts.values()) >= 300, counts


def test_listed_disagreements_name_a_rule_and_a_request() -> None:
    labels = {name: {r.label for r in requests_for(name)} for name in POLICY_NAMES}
    for (name, label), (istio, ours, why) in EXPECTED.items():
        assert label in labels.get(name, ()), (name, label)
        assert istio != ours and why.strip(), (name, label)


def statuses(
    name: str,
    native: Native,
    stack: Stack,
    minted: dict[str, str],
    jwks: str,
    only: Collection[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """Load ``name`` into authz-server; (Istio, ours) status per request label."""
    policy = next(p for p in POLICIES if p.name == name)
    stack.use_config(istio_yaml(policy, jwks))
    results = {}
    for request in requests_for(name):
        if only is not None and request.label not in only:
            continue
        method, target, headers = request.wire(minted)
        istio = status_of(native.ports[name], method, target, headers)
        ours = status_of(stack.port, method, target, headers)
        results[request.label] = (istio, ours)
    return results


def listed(
    table: dict[tuple[str, str], tuple[int, int, str]], name: str
) -> dict[str, tuple[int, int]]:
    return {label: (a, b) for (p, label), (a, b, _) in table.items() if p == name}


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_same_status(
    name: str,
    native: Native,
    authz_stack: Stack,
    minted: dict[str, str],
    diff_keys: Keys,
) -> None:
    results = statuses(name, native, authz_stack, minted, diff_keys.jwks)
    found = {label: pair for label, pair in results.items() if pair[0] != pair[1]}
    expected = listed(EXPECTED, name)
    undocumented = {k: v for k, v in found.items() if expected.get(k) != v}
    missing = {k: v for k, v in expected.items() if found.get(k) != v}
    agree = sum(istio == ours for istio, ours in results.values())
    summary = (
        f"{name}: {len(results)} requests, {agree} agree, {len(found)} disagree "
        f"({len(found) - len(undocumented)} documented)"
    )
    lines = [f"  (Istio, ours) {v} {k}" for k, v in sorted(undocumented.items())]
    lines += [
        f"  expected, seen {results.get(k)}: {v} {k}"
        for k, v in sorted(missing.items())
    ]
    assert not undocumented and not missing, summary + "\n" + "\n".join(lines)
