"""Compile AuthorizationPolicy rules into checks over one request.

A rule matches when one of its ``from`` sources matches (or it has none), one of its
``to`` operations matches (or it has none) and every ``when`` condition holds. Inside
a source or operation every field set must match; inside a field any value may. A
``not*`` field or ``notValues`` holds when no value matches, so attributes that are
absent (no token, no mTLS identity) fail positive matches and pass negative ones.

Some attributes have several readings: a path has stricter views (see
:mod:`authz_server.authz.paths`), a header repeated by the client reaches us joined
with ``,``, a method may come in lower case. A check then leans the safe way: where
a match could let a request through (a positive ALLOW field) it needs the plain
readings to agree; everywhere else (DENY and AUDIT rules, and every negated field)
it takes the *wide* readings too, and a DENY matches if any of them does while a
negated ALLOW field holds only if none does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from authz_server.authz import match
from authz_server.authz.paths import PathViews
from authz_server.config.model import Action, AuthorizationPolicy, Condition, Rule
from authz_server.decision import Identity
from authz_server.errors import FieldError
from authz_server.request import Request


@dataclass(frozen=True)
class Context:
    """Everything a rule may look at."""

    request: Request
    identity: Identity | None
    paths: PathViews
    remote_ip: str


Check = Callable[[Context], bool]
Readings = Callable[[Context, bool], tuple[str, ...]]
"""An attribute's readings; the flag asks for the wide set (see above)."""
CLAIM_GROUPS = re.compile(r"(\[[^\[\]]+\])+")


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy ready to evaluate; ``rules`` are in document order."""

    id: str
    action: Action
    dry_run: bool
    namespace: str
    match_labels: dict[str, str] | None
    rules: tuple[CompiledRule, ...]

    def first_match(self, context: Context) -> int | None:
        """Index of the first rule that matches, or None."""
        for index, rule in enumerate(self.rules):
            if rule(context):
                return index
        return None


def compile_policy(policy: AuthorizationPolicy) -> CompiledPolicy:
    """Compile ``policy``; raise FieldError for a value we cannot evaluate."""
    lean = policy.action != "ALLOW"
    namespace = policy.origin.namespace
    rules = tuple(_rule(rule, lean, namespace) for rule in policy.rules)
    return CompiledPolicy(
        id=policy.origin.policy_id,
        action=policy.action,
        dry_run=policy.dry_run,
        namespace=namespace,
        match_labels=policy.selector.match_labels,
        rules=rules,
    )


@dataclass(frozen=True)
class Part:
    """One ``from[]``, ``to[]`` or ``when[]`` entry of a rule, with its field path."""

    label: str
    check: Check


@dataclass(frozen=True)
class CompiledRule:
    """A rule: any source, any operation, every condition."""

    sources: tuple[Part, ...]
    operations: tuple[Part, ...]
    conditions: tuple[Part, ...]

    def __call__(self, context: Context) -> bool:
        return (
            (not self.sources or any(p.check(context) for p in self.sources))
            and (not self.operations or any(p.check(context) for p in self.operations))
            and all(p.check(context) for p in self.conditions)
        )

    def explain(self, context: Context) -> list[tuple[str, bool]]:
        """Each part of the rule and whether it matched (for ``explain``)."""
        parts = self.sources + self.operations + self.conditions
        return [(part.label, part.check(context)) for part in parts]


def _rule(rule: Rule, lean: bool, namespace: str) -> CompiledRule:
    sources = [
        Part(path, _clause(clause, path, lean, namespace))
        for i, clause in enumerate(rule.sources)
        for path in [f"{rule.field_path}.from[{i}].source"]
    ]
    operations = [
        Part(path, _clause(clause, path, lean, namespace))
        for i, clause in enumerate(rule.operations)
        for path in [f"{rule.field_path}.to[{i}].operation"]
    ]
    conditions = [
        Part(f"{c.field_path} {c.key}", _condition(c, lean, namespace))
        for c in rule.conditions
    ]
    return CompiledRule(tuple(sources), tuple(operations), tuple(conditions))


def _clause(
    clause: dict[str, tuple[str, ...]], path: str, lean: bool, namespace: str
) -> Check:
    checks = []
    for name, values in clause.items():
        negate = name.startswith("not")
        base = name[3].lower() + name[4:] if negate else name
        checks.append(_field(base, values, f"{path}.{name}", lean, negate, namespace))
    return lambda context: all(check(context) for check in checks)


def _field(
    name: str,
    values: Sequence[str],
    path: str,
    lean: bool,
    negate: bool,
    namespace: str,
) -> Check:
    if name == "requestPrincipals":
        return _identity_check(_principal_test(values), negate)
    if name in ("ipBlocks", "remoteIpBlocks"):
        readings: Readings = _source_ip if name == "ipBlocks" else _remote_ip
        return _readings(readings, match.ip_test(values, path), lean, negate)
    if name == "ports":
        ports = {match.port(v, f"{path}[{i}]") for i, v in enumerate(values)}
        return _port_check(ports, negate)
    test, readings = _string_field(name, values, path, namespace)
    return _readings(readings, test, lean, negate)


def _string_field(
    name: str, values: Sequence[str], path: str, namespace: str
) -> tuple[match.StringTest, Readings]:
    if name == "principals":
        return match.any_of([match.spiffe_pattern(v) for v in values]), _peer
    if name == "namespaces":
        return match.any_of([match.namespace_test(v) for v in values]), _peer
    if name == "serviceAccounts":
        tests = [
            match.service_account_test(v, namespace, f"{path}[{i}]")
            for i, v in enumerate(values)
        ]
        return match.any_of(tests), _peer
    if name == "hosts":
        tests = [match.pattern(v, empty_matches=True, fold_case=True) for v in values]
        return match.any_of(tests), _host
    if name == "methods":
        return match.any_of(
            [match.pattern(v, empty_matches=True) for v in values]
        ), _method
    if name == "paths":
        tests = [match.path_pattern(v, f"{path}[{i}]") for i, v in enumerate(values)]
        return match.any_of(tests), _paths
    raise FieldError(path, "is not a field authz-server can evaluate")


def _readings(
    readings: Readings, test: match.StringTest, lean: bool, negate: bool
) -> Check:
    wide = lean or negate

    def check(context: Context) -> bool:
        return decide(test, readings(context, wide), lean=lean, negate=negate)

    return check


def decide(
    test: match.StringTest, readings: tuple[str, ...], *, lean: bool, negate: bool
) -> bool:
    """Apply ``test`` to every reading of an attribute, leaning as the action needs.

    An absent attribute (no readings) fails a positive match and passes a negative
    one. A DENY rule (``lean``) matches if any reading does (positive) or any
    reading does not (negative); an ALLOW rule needs every reading to agree.
    """
    if not readings:
        return negate
    results = [test(reading) for reading in readings]
    if negate:
        return not all(results) if lean else not any(results)
    return any(results) if lean else all(results)


def _peer(context: Context, _: bool) -> tuple[str, ...]:
    principal = context.request.source_principal
    return (principal,) if principal else ()


def _host(context: Context, _: bool) -> tuple[str, ...]:
    return (context.request.host.lower(),)


def _method(context: Context, wide: bool) -> tuple[str, ...]:
    method = context.request.method
    if wide and method != method.upper():
        return (method, method.upper())
    return (method,)


def _paths(context: Context, wide: bool) -> tuple[str, ...]:
    return context.paths.all if wide else context.paths.allow


def _source_ip(context: Context, _: bool) -> tuple[str, ...]:
    return (context.request.source_ip,) if context.request.source_ip else ()


def _remote_ip(context: Context, _: bool) -> tuple[str, ...]:
    return (context.remote_ip,) if context.remote_ip else ()


def _port_check(ports: set[int], negate: bool) -> Check:
    def check(context: Context) -> bool:
        port = context.request.destination_port
        if port is None:
            return negate
        return (port in ports) != negate

    return check


def _identity_check(test: Callable[[Identity], bool], negate: bool) -> Check:
    def check(context: Context) -> bool:
        identity = context.identity
        matched = identity is not None and test(identity)
        return matched != negate

    return check


def _principal_test(values: Sequence[str]) -> Callable[[Identity], bool]:
    tests = [_one_principal(value) for value in values]
    return lambda identity: any(test(identity) for test in tests)


def _one_principal(value: str) -> Callable[[Identity], bool]:
    """Istio's ``requestPrincipals`` value: issuer and subject matched apart.

    The value splits at its last ``/``. A leading ``*`` makes the issuer part a
    suffix (or presence, when it is only ``*``) and the subject exact; a trailing
    ``*`` makes the subject a prefix (or presence) and the issuer exact. Without
    ``/``, the value is the issuer and the subject must be empty, except for the
    ``*`` forms.
    """
    issuer, slash, subject = value.rpartition("/")
    if not slash:
        issuer, subject = value, ""
    present: match.StringTest = bool

    if value == "*":
        iss_test, sub_test = present, present
    elif value.startswith("*") and slash:
        iss_test = present if issuer == "*" else _suffix(issuer[1:])
        sub_test = _exact(subject)
    elif value.startswith("*"):
        iss_test, sub_test = present, _suffix(value[1:])
    elif value.endswith("*") and slash:
        iss_test = _exact(issuer)
        sub_test = present if subject == "*" else _prefix(subject[:-1])
    elif value.endswith("*"):
        iss_test, sub_test = _prefix(value[:-1]), present
    else:
        iss_test, sub_test = _exact(issuer), _exact(subject)
    return lambda identity: iss_test(identity.issuer) and sub_test(identity.subject)


def _exact(expected: str) -> match.StringTest:
    return lambda text: text == expected


def _prefix(prefix: str) -> match.StringTest:
    return lambda text: bool(text) and text.startswith(prefix)


def _suffix(suffix: str) -> match.StringTest:
    return lambda text: bool(text) and text.endswith(suffix)


def _condition(condition: Condition, lean: bool, namespace: str) -> Check:
    checks = []
    if condition.values:
        checks.append(
            _condition_check(condition, condition.values, lean, False, namespace)
        )
    if condition.not_values:
        checks.append(
            _condition_check(condition, condition.not_values, lean, True, namespace)
        )
    return lambda context: all(check(context) for check in checks)


def _condition_check(
    condition: Condition,
    values: Sequence[str],
    lean: bool,
    negate: bool,
    namespace: str,
) -> Check:
    key = condition.key
    where = f"{condition.field_path}.{'notValues' if negate else 'values'}"
    if key.startswith("request.headers"):
        name = _bracketed(key, "request.headers", f"{condition.field_path}.key")
        tests = [match.pattern(v, empty_matches=True) for v in values]
        return _readings(
            _header_readings(name.lower()), match.any_of(tests), lean, negate
        )
    if key.startswith("request.auth.claims"):
        claim_path = _claim_path(key, f"{condition.field_path}.key")
        return _claim_check(claim_path, values, negate)
    simple = {
        "source.ip": ("ipBlocks", values),
        "remote.ip": ("remoteIpBlocks", values),
        "source.principal": ("principals", values),
        "source.namespace": ("namespaces", values),
        "source.serviceAccount": ("serviceAccounts", values),
        "request.auth.principal": ("requestPrincipals", values),
    }
    if key in simple:
        name, items = simple[key]
        return _field(name, items, where, lean, negate, namespace)
    if key in ("request.auth.audiences", "request.auth.presenter"):
        claim = "aud" if key.endswith("audiences") else "azp"
        return _claim_check((claim,), values, negate)
    if key == "destination.ip":
        return _readings(_destination_ip, match.ip_test(values, where), lean, negate)
    if key == "destination.port":
        return _port_check({match.port(v, where) for v in values}, negate)
    if key == "connection.sni":
        tests = [match.pattern(v, empty_matches=False) for v in values]
        return _readings(_sni, match.any_of(tests), lean, negate)
    raise FieldError(
        f"{condition.field_path}.key",
        f"{key!r} is not a condition authz-server supports",
    )


def _bracketed(key: str, prefix: str, path: str) -> str:
    rest = key[len(prefix) :]
    if len(rest) < 3 or rest[0] != "[" or rest[-1] != "]":
        raise FieldError(path, f"{key!r} must look like {prefix}[name]")
    return rest[1:-1]


def _claim_path(key: str, path: str) -> tuple[str, ...]:
    rest = key[len("request.auth.claims") :]
    if CLAIM_GROUPS.fullmatch(rest):
        return tuple(group.strip("[]") for group in re.findall(r"\[[^\[\]]+\]", rest))
    return (_bracketed(key, "request.auth.claims", path),)


def _claim_check(
    claim_path: tuple[str, ...], values: Sequence[str], negate: bool
) -> Check:
    test = match.any_of([match.pattern(v, empty_matches=False) for v in values])

    def holds(identity: Identity) -> bool:
        value: object = identity.claims
        for name in claim_path:
            if not isinstance(value, dict) or name not in value:
                return False
            value = value[name]
        return match.claim_matches(value, test)

    return _identity_check(holds, negate)


def _header_readings(name: str) -> Readings:
    def readings(context: Context, wide: bool) -> tuple[str, ...]:
        lines = context.request.header_values(name)
        if not wide:
            return lines
        pieces = [p.strip() for line in lines if "," in line for p in line.split(",")]
        return tuple(dict.fromkeys([*lines, *pieces]))

    return readings


def _destination_ip(context: Context, _: bool) -> tuple[str, ...]:
    ip = context.request.destination_ip
    return (ip,) if ip else ()


def _sni(context: Context, _: bool) -> tuple[str, ...]:
    return (context.request.sni,) if context.request.sni else ()
