"""Envoy's native ``jwt_authn`` + ``rbac`` configuration, in the shapes istiod writes.

The helpers mirror istiod's translation code (``pilot/pkg/security/authn`` and
``pilot/pkg/security/authz/{model,matcher}``) one matcher at a time, so that each
policy in :mod:`diff_policies` can spell out its native RBAC next to its Istio YAML
the way istiod would generate it:

* :func:`jwt_authn` is ``convertToEnvoyJwtConfig``: providers ``origins-<i>`` in
  issuer order, ``requires_any [origins-0, allow_missing]`` for one rule and the
  RA-3 form ``any{P1..Pn, all{any{Pi, allow_missing}...}}`` for several,
  ``payload_in_metadata: payload``, ``normalize_payload_in_metadata`` with
  ``scope``, ``permission`` and the rule's ``spaceDelimitedClaims`` (RA-12),
  ``bypass_cors_preflight: true`` (RA-20), inline keys (istiod inlines the JWKS).
* ``string_match``/``header``/``host``/``path``/``claim``/``principal`` are
  ``matcher.StringMatcher``, ``HeaderMatcher``, ``HostMatcher``, ``PathMatcher``,
  ``MetadataListMatcher`` (the extended ``or(list one_of, string)`` form) and the
  request-principal generator (issuer and subject matched apart, ID-1).
* :func:`bootstrap` puts one listener per policy in one Envoy, with the HTTP
  connection manager's path settings of ``envoy/front-proxy.yaml`` (Istio's BASE
  mode), and answers allowed requests with a direct 200.

istiod writes ``Principal.metadata``; Envoy 1.40 marks it deprecated, so principals
use the equivalent ``sourced_metadata`` (DYNAMIC), as the validated reference
``/work/shared/envoy-reference/native-jwt-rbac.yaml`` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]

JWT_FILTER = "envoy.filters.http.jwt_authn"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
JWT_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
)
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
    ".v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
URI_TEMPLATE_TYPE = (
    "type.googleapis.com/envoy.extensions.path.match.uri_template.v3"
    ".UriTemplateMatchConfig"
)
DEFAULT_SPACE_DELIMITED = ("scope", "permission")


# --- RequestAuthentication -> jwt_authn ---------------------------------------


def jwt_authn(jwt_rules: Sequence[Mapping[str, Any]]) -> Json:
    """The jwt_authn filter istiod writes for the merged ``jwtRules`` (RA-2, RA-3)."""
    ordered = sorted(jwt_rules, key=lambda rule: str(rule.get("issuer", "")))
    providers = {f"origins-{i}": _provider(rule) for i, rule in enumerate(ordered)}
    names = list(providers)
    if len(names) == 1:
        requires: Json = {
            "requires_any": {
                "requirements": [{"provider_name": names[0]}, {"allow_missing": {}}]
            }
        }
    else:
        optional = [
            {
                "requires_any": {
                    "requirements": [{"provider_name": name}, {"allow_missing": {}}]
                }
            }
            for name in names
        ]
        requires = {
            "requires_any": {
                "requirements": [
                    *({"provider_name": name} for name in names),
                    {"requires_all": {"requirements": optional}},
                ]
            }
        }
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": JWT_TYPE,
            "providers": providers,
            "rules": [{"match": {"prefix": "/"}, "requires": requires}],
            "bypass_cors_preflight": True,
        },
    }


def _provider(rule: Mapping[str, Any]) -> Json:
    provider: Json = {"issuer": rule["issuer"]}
    if rule.get("audiences"):
        provider["audiences"] = list(rule["audiences"])
    provider["local_jwks"] = {"inline_string": rule["jwks"]}
    provider["forward"] = bool(rule.get("forwardOriginalToken", False))
    if rule.get("fromHeaders"):
        provider["from_headers"] = [
            {"name": h["name"], "value_prefix": h.get("prefix", "")}
            for h in rule["fromHeaders"]
        ]
    if rule.get("fromParams"):
        provider["from_params"] = list(rule["fromParams"])
    if rule.get("outputPayloadToHeader"):
        provider["forward_payload_header"] = rule["outputPayloadToHeader"]
    if rule.get("outputClaimToHeaders"):
        provider["claim_to_headers"] = [
            {"header_name": c["header"], "claim_name": c["claim"]}
            for c in rule["outputClaimToHeaders"]
        ]
    provider["payload_in_metadata"] = "payload"
    claims = [*DEFAULT_SPACE_DELIMITED, *rule.get("spaceDelimitedClaims", ())]
    provider["normalize_payload_in_metadata"] = {
        "space_delimited_claims": list(dict.fromkeys(claims))
    }
    return provider


# --- matcher.* ------------------------------------------------------------------


def string_match(value: str, *, ignore_case: bool = False) -> Json:
    """``matcher.StringMatcher``: ``*`` is ``.+``, ``x*`` prefix, ``*x`` suffix."""
    if value == "*":
        matcher: Json = {"safe_regex": {"regex": ".+"}}
    elif value.startswith("*"):
        matcher = {"suffix": value[1:]}
    elif value.endswith("*"):
        matcher = {"prefix": value[:-1]}
    else:
        matcher = {"exact": value}
    if ignore_case and "safe_regex" not in matcher:
        matcher["ignore_case"] = True
    return matcher


def header(name: str, value: str) -> Json:
    """``matcher.HeaderMatcher``: ``*`` means present (even empty)."""
    if value == "*":
        return {"header": {"name": name, "present_match": True}}
    return {"header": {"name": name, "string_match": string_match(value)}}


def host(value: str) -> Json:
    """``matcher.HostMatcher`` on ``:authority``, case-insensitive (AP-6)."""
    if value == "*":
        return {"header": {"name": ":authority", "present_match": True}}
    matcher = string_match(value, ignore_case=True)
    return {"header": {"name": ":authority", "string_match": matcher}}


def method(value: str) -> Json:
    """``methods``: a header matcher on ``:method`` (case-sensitive, AP-8)."""
    return header(":method", value)


def path(value: str) -> Json:
    """``paths``: ``url_path`` (query stripped), or a ``uri_template`` (PA-2).

    istiod's ``sanitizePathTemplate`` rewrites Istio's ``{*}``/``{**}`` into
    Envoy's template operators ``*``/``**`` (Envoy reads ``{...}`` as a named
    variable; Envoy 1.40 even aborts on ``{**}`` inside an RBAC permission).
    """
    if "{" in value:
        template = value.replace("{**}", "**").replace("{*}", "*")
        return {
            "uri_template": {
                "name": "uri-template",
                "typed_config": {
                    "@type": URI_TEMPLATE_TYPE,
                    "path_template": template,
                },
            }
        }
    matcher = string_match(value)
    matcher["ignore_case"] = False
    return {"url_path": {"path": matcher}}


def _metadata(keys: Sequence[str], value: Json) -> Json:
    return {
        "sourced_metadata": {
            "metadata_source": "DYNAMIC",
            "metadata_matcher": {
                "filter": JWT_FILTER,
                "path": [{"key": key} for key in ("payload", *keys)],
                "value": value,
            },
        }
    }


def claim(keys: Sequence[str], value: str) -> Json:
    """``request.auth.claims[k1][k2]``, ``audiences``: list one_of or string (ID-5)."""
    matcher = string_match(value)
    return _metadata(
        keys,
        {
            "or_match": {
                "value_matchers": [
                    {"list_match": {"one_of": {"string_match": matcher}}},
                    {"string_match": matcher},
                ]
            }
        },
    )


def principal(value: str) -> Json:
    """``requestPrincipals`` / ``request.auth.principal``: iss and sub apart (ID-1)."""
    issuer, slash, subject = value.rpartition("/")
    if value == "*":
        iss, sub = "*", "*"
    elif not slash:
        if value.startswith("*"):
            iss, sub = "*", value
        elif value.endswith("*"):
            iss, sub = value, "*"
        else:
            iss, sub = value, ""
    else:
        iss, sub = issuer, subject
    parts = [
        _metadata(["iss"], {"string_match": string_match(iss)}),
        _metadata(["sub"], {"string_match": _exact_or_pattern(sub)}),
    ]
    return {"and_ids": {"ids": parts}}


def _exact_or_pattern(value: str) -> Json:
    return {"exact": ""} if value == "" else string_match(value)


# --- rule structure (model.Generate) ------------------------------------------


def any_of(rules: Sequence[Json], *, ids: bool = False) -> Json:
    """One field: its values ORed."""
    return (
        {"or_ids": {"ids": list(rules)}}
        if ids
        else {"or_rules": {"rules": list(rules)}}
    )


def none_of(rules: Sequence[Json], *, ids: bool = False) -> Json:
    """A ``not*`` field or ``notValues``: none of its values."""
    if ids:
        return {"not_id": any_of(rules, ids=True)}
    return {"not_rule": any_of(rules)}


def permission(*fields: Json) -> Json:
    """One ``to[].operation`` (plus the rule's permission-side conditions)."""
    return {"and_rules": {"rules": list(fields) or [{"any": True}]}}


def principal_set(*fields: Json) -> Json:
    """One ``from[].source`` (plus the rule's principal-side conditions)."""
    return {"and_ids": {"ids": list(fields) or [{"any": True}]}}


def rbac_rule(
    permissions: Sequence[Json] = (), principals: Sequence[Json] = ()
) -> Json:
    """One Istio rule: any permission and any principal."""
    return {
        "permissions": list(permissions) or [permission()],
        "principals": list(principals) or [principal_set()],
    }


def rbac(action: str, policies: Mapping[str, Json]) -> Json:
    """An RBAC filter; ``policies`` maps ``ns[..]-policy[..]-rule[i]`` ids to rules."""
    rules: Json = {"action": action}
    if policies:
        rules["policies"] = dict(policies)
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {"@type": RBAC_TYPE, "rules": rules},
    }


def policy_id(name: str, index: int, namespace: str = "default") -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{index}]"


# --- bootstrap -------------------------------------------------------------------


def listener(name: str, port: int, filters: Sequence[Json]) -> Json:
    """One policy's listener: BASE path normalisation, filters, direct 200."""
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": name,
                            "codec_type": "AUTO",
                            "use_remote_address": True,
                            "normalize_path": True,
                            "merge_slashes": False,
                            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
                            "route_config": {
                                "name": name,
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "direct_response": {
                                                    "status": 200,
                                                    "body": {"inline_string": "ok\n"},
                                                },
                                            }
                                        ],
                                    }
                                ],
                            },
                            "http_filters": [
                                *filters,
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": ROUTER_TYPE},
                                },
                            ],
                        },
                    }
                ]
            }
        ],
    }


def bootstrap(admin_port: int, listeners: Sequence[Json]) -> Json:
    return {
        "admin": {
            "address": {
                "socket_address": {"address": "127.0.0.1", "port_value": admin_port}
            }
        },
        "static_resources": {"listeners": list(listeners)},
    }


def jwks_text(jwks: Mapping[str, Any]) -> str:
    return json.dumps(jwks, separators=(",", ":"))
