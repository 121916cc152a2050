"""Parse Istio ``RequestAuthentication`` and ``AuthorizationPolicy`` documents.

Documents load exactly as written for a mesh. Unknown kinds, API versions and fields
are errors, as are the shapes Istio's validating webhook rejects; where Istio would
quietly drop a rule instead (and so fail open), we reject the document.
"""

from __future__ import annotations

import json
import re
from typing import Any

from authz_server.config.fields import Reader
from authz_server.config.model import (
    Action,
    AuthorizationPolicy,
    ClaimToHeader,
    Condition,
    JwtHeader,
    JwtRule,
    Origin,
    RequestAuthentication,
    Rule,
    Selector,
)
from authz_server.config.source import Document
from authz_server.errors import ConfigProblem

API_VERSIONS = frozenset({"security.istio.io/v1", "security.istio.io/v1beta1"})
TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
DRY_RUN_ANNOTATION = "istio.io/dry-run"
DEFAULT_NAMESPACE = "default"

RULE_FIELDS = frozenset(
    {
        "issuer",
        "audiences",
        "jwksUri",
        "jwks",
        "fromHeaders",
        "fromParams",
        "fromCookies",
        "outputPayloadToHeader",
        "outputClaimToHeaders",
        "forwardOriginalToken",
        "timeout",
        "spaceDelimitedClaims",
    }
)


def _with_negations(*names: str) -> frozenset[str]:
    return frozenset(names) | {"not" + name[0].upper() + name[1:] for name in names}


SOURCE_FIELDS = _with_negations(
    "principals",
    "requestPrincipals",
    "namespaces",
    "ipBlocks",
    "remoteIpBlocks",
    "serviceAccounts",
)
OPERATION_FIELDS = _with_negations("hosts", "ports", "methods", "paths")
HEADER_NAME = re.compile(r"^[-_A-Za-z0-9]+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
MAX_JWKS_URI_LENGTH = 2048


def parse_document(
    doc: Document, problems: list[ConfigProblem]
) -> RequestAuthentication | AuthorizationPolicy | None:
    """Parse one document of a known kind, recording its problems.

    A document with problems still yields a resource (with harmless values where
    fields were wrong) so that later checks can report their problems in the same
    run; a config with any problem is never served.
    """
    reader = Reader(doc.file, doc.index, problems)
    top = reader.mapping(doc.body, "", TOP_FIELDS)
    if not top and not isinstance(doc.body, dict):
        return None

    api_version = top.get("apiVersion")
    if api_version not in API_VERSIONS:
        versions = ", ".join(sorted(API_VERSIONS))
        reader.problem("apiVersion", f"{api_version!r} is not one of {versions}")
    kind = top.get("kind")
    origin = _origin(reader, top.get("metadata"))
    spec = top.get("spec")

    resource: RequestAuthentication | AuthorizationPolicy | None = None
    if kind == "RequestAuthentication":
        resource = _request_authentication(reader, origin, spec)
    elif kind == "AuthorizationPolicy":
        resource = _authorization_policy(reader, origin, spec, top.get("metadata"))
    else:
        kinds = "RequestAuthentication, AuthorizationPolicy"
        reader.problem("kind", f"{kind!r} is not one of {kinds}")
    return resource


def _origin(reader: Reader, metadata: Any) -> Origin:
    if not isinstance(metadata, dict):
        reader.problem("metadata", "is required and must be a mapping")
        metadata = {}
    name = reader.string(metadata.get("name"), "metadata.name", required=True)
    namespace = reader.string(metadata.get("namespace"), "metadata.namespace")
    return Origin(reader.file, reader.document, name, namespace or DEFAULT_NAMESPACE)


def _selector(reader: Reader, spec: dict[str, Any]) -> Selector:
    if "targetRef" in spec or "targetRefs" in spec:
        field = "spec.targetRef" if "targetRef" in spec else "spec.targetRefs"
        reader.problem(
            field,
            "targetRef(s) attach policies to Gateway API resources, which authz-server "
            "cannot see; use spec.selector.matchLabels with per-route "
            "context_extensions instead",
        )
    if "selector" not in spec:
        return Selector()
    selector = reader.mapping(
        spec["selector"], "spec.selector", frozenset({"matchLabels"})
    )
    labels = reader.labels(selector.get("matchLabels"), "spec.selector.matchLabels")
    return Selector(labels)


def _request_authentication(
    reader: Reader, origin: Origin, spec: Any
) -> RequestAuthentication:
    allowed = frozenset({"selector", "targetRef", "targetRefs", "jwtRules"})
    body = reader.mapping(spec, "spec", allowed)
    rules = [
        _jwt_rule(reader, item, f"spec.jwtRules[{index}]")
        for index, item in enumerate(
            reader.items(body.get("jwtRules"), "spec.jwtRules")
        )
    ]
    return RequestAuthentication(origin, _selector(reader, body), tuple(rules))


def _jwt_rule(reader: Reader, value: Any, path: str) -> JwtRule:
    body = reader.mapping(value, path, RULE_FIELDS)
    issuer = reader.string(body.get("issuer"), f"{path}.issuer")
    jwks_uri = reader.string(body.get("jwksUri"), f"{path}.jwksUri")
    jwks = reader.string(body.get("jwks"), f"{path}.jwks")
    _check_key_source(reader, path, issuer, jwks_uri, jwks)

    return JwtRule(
        field_path=path,
        issuer=issuer,
        audiences=reader.strings(body.get("audiences"), f"{path}.audiences"),
        jwks_uri=jwks_uri,
        jwks=jwks,
        from_headers=_from_headers(reader, body.get("fromHeaders"), path),
        from_params=reader.strings(body.get("fromParams"), f"{path}.fromParams"),
        from_cookies=reader.strings(body.get("fromCookies"), f"{path}.fromCookies"),
        output_payload_to_header=_header_name(
            reader, body.get("outputPayloadToHeader"), f"{path}.outputPayloadToHeader"
        ),
        output_claim_to_headers=_claim_headers(
            reader, body.get("outputClaimToHeaders"), path
        ),
        forward_original_token=reader.boolean(
            body.get("forwardOriginalToken"), f"{path}.forwardOriginalToken"
        ),
        timeout_seconds=_duration(reader, body.get("timeout"), f"{path}.timeout"),
        space_delimited_claims=reader.strings(
            body.get("spaceDelimitedClaims"), f"{path}.spaceDelimitedClaims"
        ),
    )


def _check_key_source(
    reader: Reader, path: str, issuer: str, jwks_uri: str, jwks: str
) -> None:
    if jwks_uri and jwks:
        reader.problem(path, "set at most one of jwksUri and jwks")
    if not issuer and not jwks_uri:
        reader.problem(f"{path}.issuer", "is required unless jwksUri is set")
    if jwks_uri and not jwks_uri.startswith(("http://", "https://", "file:///")):
        reader.problem(
            f"{path}.jwksUri", "must be an http://, https:// or file:/// URL"
        )
    if len(jwks_uri) > MAX_JWKS_URI_LENGTH:
        reader.problem(f"{path}.jwksUri", f"is longer than {MAX_JWKS_URI_LENGTH}")
    if jwks:
        _check_inline_jwks(reader, jwks, f"{path}.jwks")


def _check_inline_jwks(reader: Reader, jwks: str, path: str) -> None:
    try:
        document = json.loads(jwks)
    except ValueError as err:
        reader.problem(path, f"is not valid JSON: {err}")
        return
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        reader.problem(path, 'must be a JWK set: a JSON object with a "keys" list')


def _from_headers(reader: Reader, value: Any, path: str) -> tuple[JwtHeader, ...]:
    headers = []
    for index, item in enumerate(reader.items(value, f"{path}.fromHeaders")):
        where = f"{path}.fromHeaders[{index}]"
        body = reader.mapping(item, where, frozenset({"name", "prefix"}))
        name = reader.string(body.get("name"), f"{where}.name", required=True)
        prefix = body.get("prefix", "")
        if not isinstance(prefix, str):
            reader.problem(f"{where}.prefix", "must be a string")
            prefix = ""
        headers.append(JwtHeader(name.lower(), prefix))
    return tuple(headers)


def _header_name(reader: Reader, value: Any, path: str) -> str:
    name = reader.string(value, path)
    if name and not HEADER_NAME.match(name):
        reader.problem(path, "must contain only letters, digits, '-' and '_'")
    return name.lower()


def _claim_headers(reader: Reader, value: Any, path: str) -> tuple[ClaimToHeader, ...]:
    entries: list[ClaimToHeader] = []
    for index, item in enumerate(reader.items(value, f"{path}.outputClaimToHeaders")):
        where = f"{path}.outputClaimToHeaders[{index}]"
        body = reader.mapping(item, where, frozenset({"header", "claim"}))
        header = _header_name(reader, body.get("header"), f"{where}.header")
        claim = reader.string(body.get("claim"), f"{where}.claim", required=True)
        if not header:
            reader.problem(f"{where}.header", "is required")
        elif header in {entry.header for entry in entries}:
            reader.problem(f"{where}.header", f"{header!r} is listed twice")
        entries.append(ClaimToHeader(header, claim))
    return tuple(entries)


def _duration(reader: Reader, value: Any, path: str) -> float:
    if value is None:
        return 5.0
    text = value if isinstance(value, str) else ""
    parts = DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        reader.problem(path, f"{value!r} is not a duration such as '5s' or '500ms'")
        return 5.0
    seconds = sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        reader.problem(path, "must be positive")
        return 5.0
    return seconds


def _authorization_policy(
    reader: Reader, origin: Origin, spec: Any, metadata: Any
) -> AuthorizationPolicy:
    allowed = frozenset(
        {"selector", "targetRef", "targetRefs", "rules", "action", "provider"}
    )
    body = reader.mapping(spec, "spec", allowed)
    action = _action(reader, body)
    rules = [
        _rule(reader, item, f"spec.rules[{index}]")
        for index, item in enumerate(reader.items(body.get("rules"), "spec.rules"))
    ]
    if action == "DENY" and not rules:
        reader.problem("spec.rules", "a DENY policy needs at least one rule")

    return AuthorizationPolicy(
        origin=origin,
        selector=_selector(reader, body),
        action=action,
        rules=tuple(rules),
        dry_run=_dry_run(reader, metadata),
    )


def _action(reader: Reader, body: dict[str, Any]) -> Action:
    action = body.get("action", "ALLOW")
    if action == "CUSTOM":
        reader.problem(
            "spec.action",
            "CUSTOM sends requests to an external authorizer; authz-server is that "
            "authorizer, so the CUSTOM policy belongs in the mesh, not in this config",
        )
    elif action not in ("ALLOW", "DENY", "AUDIT"):
        reader.problem("spec.action", f"{action!r} is not one of ALLOW, DENY, AUDIT")
    if "provider" in body and action != "CUSTOM":
        reader.problem("spec.provider", "is only allowed with action CUSTOM")
    return action if action in ("ALLOW", "DENY", "AUDIT") else "DENY"


def _dry_run(reader: Reader, metadata: Any) -> bool:
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or DRY_RUN_ANNOTATION not in annotations:
        return False
    value = annotations[DRY_RUN_ANNOTATION]
    if value in TRUE_WORDS:
        return True
    if value not in FALSE_WORDS:
        reader.problem(
            f"metadata.annotations[{DRY_RUN_ANNOTATION}]",
            f'{value!r} is not a boolean such as "true" or "false"',
        )
    return False


def _rule(reader: Reader, value: Any, path: str) -> Rule:
    body = reader.mapping(value, path, frozenset({"from", "to", "when"}))
    sources = _clauses(reader, body, path, "from", "source", SOURCE_FIELDS)
    operations = _clauses(reader, body, path, "to", "operation", OPERATION_FIELDS)
    conditions = [
        _condition(reader, item, f"{path}.when[{index}]")
        for index, item in enumerate(reader.items(body.get("when"), f"{path}.when"))
    ]
    if "when" in body and not conditions:
        reader.problem(f"{path}.when", "must not be an empty list")
    return Rule(path, sources, operations, tuple(conditions))


def _clauses(
    reader: Reader,
    body: dict[str, Any],
    path: str,
    name: str,
    inner: str,
    fields: frozenset[str],
) -> tuple[dict[str, tuple[str, ...]], ...]:
    where = f"{path}.{name}"
    entries = reader.items(body.get(name), where)
    if name in body and not entries:
        reader.problem(where, "must not be an empty list")

    clauses = []
    for index, entry in enumerate(entries):
        item = f"{where}[{index}]"
        wrapper = reader.mapping(entry, item, frozenset({inner}))
        content = reader.mapping(wrapper.get(inner), f"{item}.{inner}", fields)
        if not content:
            reader.problem(f"{item}.{inner}", "must set at least one field")
        clause = {
            key: reader.strings(values, f"{item}.{inner}.{key}")
            for key, values in content.items()
        }
        for key, values in clause.items():
            if not values:
                reader.problem(f"{item}.{inner}.{key}", "must not be empty")
        clauses.append(clause)
    return tuple(clauses)


def _condition(reader: Reader, value: Any, path: str) -> Condition:
    body = reader.mapping(value, path, frozenset({"key", "values", "notValues"}))
    key = reader.string(body.get("key"), f"{path}.key", required=True)
    values = reader.strings(body.get("values"), f"{path}.values")
    not_values = reader.strings(body.get("notValues"), f"{path}.notValues")
    if not values and not not_values:
        reader.problem(path, "needs values or notValues")
    return Condition(path, key, values, not_values)
