"""The differential policies: Istio YAML and the native config istiod writes for it.

Each :class:`Policy` holds the ``RequestAuthentication`` rules (keys are added at
run time), the ``AuthorizationPolicy`` specs exactly as a user writes them, and the
two native RBAC filters (DENY, then ALLOW) spelled out with the matcher helpers of
:mod:`native_rbac`, in the form istiod generates. ``None`` means istiod writes no
filter for that action; an empty mapping is a filter with no policy (``spec: {}``:
ALLOW nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from native_rbac import (
    Json,
    any_of,
    claim,
    header,
    host,
    method,
    none_of,
    path,
    permission,
    policy_id,
    principal,
    principal_set,
    rbac_rule,
)

NAMESPACE = "default"
ISS = "https://idp.example.com"
ISS2 = "https://other.example.com"
AUDIENCE = "api.example.com"

RA_MAIN = (
    {
        "issuer": ISS,
        "audiences": [AUDIENCE],
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}],
    },
    {"issuer": ISS2},
)
RA_ONE = ({"issuer": ISS},)
RA_SCOPE = ({"issuer": ISS, "spaceDelimitedClaims": ["custom_scope"]},)
RA_AUD = (
    {"issuer": ISS, "audiences": [f"https://{AUDIENCE}/", "other-api"]},
    {"issuer": ISS, "audiences": ["strict"]},
    {"issuer": ISS2},
)


@dataclass(frozen=True)
class Policy:
    name: str
    jwt_rules: tuple[dict[str, Any], ...]
    specs: tuple[tuple[str, dict[str, Any]], ...]
    """(AuthorizationPolicy name, spec) in document order."""
    deny: dict[str, Json] | None
    allow: dict[str, Json] | None


def ids(*fields: Json) -> Json:
    """A ``from[].source``: its fields ANDed (principal side)."""
    return principal_set(*fields)


def ops(*fields: Json) -> Json:
    """A ``to[].operation``: its fields ANDed (permission side)."""
    return permission(*fields)


def principals(*values: str) -> Json:
    return any_of([principal(v) for v in values], ids=True)


def claims(keys: list[str], *values: str) -> Json:
    return any_of([claim(keys, v) for v in values], ids=True)


def pid(name: str, index: int) -> str:
    return policy_id(name, index, NAMESPACE)


POLICIES: tuple[Policy, ...] = (
    Policy(
        name="require-jwt",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "require-jwt",
                {
                    "action": "ALLOW",
                    "rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}],
                },
            ),
        ),
        deny=None,
        allow={pid("require-jwt", 0): rbac_rule(principals=[ids(principals("*"))])},
    ),
    Policy(
        name="principals",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "principals",
                {
                    "rules": [
                        {
                            "from": [
                                {
                                    "source": {
                                        "requestPrincipals": [
                                            f"{ISS}/alice",
                                            f"{ISS2}/*",
                                        ]
                                    }
                                }
                            ]
                        },
                        {
                            "from": [{"source": {"requestPrincipals": ["*/bob"]}}],
                            "to": [{"operation": {"methods": ["GET"]}}],
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.principal",
                                    "values": [f"{ISS}/car*"],
                                }
                            ]
                        },
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("principals", 0): rbac_rule(
                principals=[ids(principals(f"{ISS}/alice", f"{ISS2}/*"))]
            ),
            pid("principals", 1): rbac_rule(
                permissions=[ops(any_of([method("GET")]))],
                principals=[ids(principals("*/bob"))],
            ),
            pid("principals", 2): rbac_rule(
                principals=[ids(principals(f"{ISS}/car*"))]
            ),
        },
    ),
    Policy(
        name="deny-admin",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "deny-admin",
                {
                    "action": "DENY",
                    "rules": [
                        {
                            "from": [
                                {"source": {"notRequestPrincipals": [f"{ISS}/alice"]}}
                            ],
                            "to": [{"operation": {"paths": ["/admin", "/admin/*"]}}],
                        }
                    ],
                },
            ),
        ),
        deny={
            pid("deny-admin", 0): rbac_rule(
                permissions=[ops(any_of([path("/admin"), path("/admin/*")]))],
                principals=[ids(none_of([principal(f"{ISS}/alice")], ids=True))],
            )
        },
        allow=None,
    ),
    Policy(
        name="claims",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "claims",
                {
                    "action": "ALLOW",
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[roles]",
                                    "values": ["admin"],
                                },
                                {
                                    "key": "request.auth.claims[groups]",
                                    "values": ["eng"],
                                },
                            ]
                        },
                        {
                            "when": [
                                {"key": "request.auth.claims[level]", "values": ["3"]}
                            ]
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[admin]",
                                    "values": ["true"],
                                }
                            ]
                        },
                        {
                            "to": [{"operation": {"paths": ["/guest"]}}],
                            "when": [
                                {
                                    "key": "request.auth.claims[roles]",
                                    "notValues": ["admin", "user", "viewer"],
                                }
                            ],
                        },
                    ],
                },
            ),
        ),
        deny=None,
        allow={
            pid("claims", 0): rbac_rule(
                principals=[ids(claims(["roles"], "admin"), claims(["groups"], "eng"))]
            ),
            pid("claims", 1): rbac_rule(principals=[ids(claims(["level"], "3"))]),
            pid("claims", 2): rbac_rule(principals=[ids(claims(["admin"], "true"))]),
            pid("claims", 3): rbac_rule(
                permissions=[ops(any_of([path("/guest")]))],
                principals=[
                    ids(
                        none_of(
                            [claim(["roles"], v) for v in ("admin", "user", "viewer")],
                            ids=True,
                        )
                    )
                ],
            ),
        },
    ),
    Policy(
        name="nested",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "nested",
                {
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[org][team][name]",
                                    "values": ["core"],
                                }
                            ]
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[org][team]",
                                    "values": ["co*"],
                                }
                            ]
                        },
                        {
                            "from": [{"source": {"requestPrincipals": ["*"]}}],
                            "to": [{"operation": {"paths": ["/other"]}}],
                            "when": [
                                {
                                    "key": "request.auth.claims[org][team][name]",
                                    "notValues": ["core"],
                                }
                            ],
                        },
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("nested", 0): rbac_rule(
                principals=[ids(claims(["org", "team", "name"], "core"))]
            ),
            pid("nested", 1): rbac_rule(
                principals=[ids(claims(["org", "team"], "co*"))]
            ),
            pid("nested", 2): rbac_rule(
                permissions=[ops(any_of([path("/other")]))],
                principals=[
                    ids(
                        principals("*"),
                        none_of([claim(["org", "team", "name"], "core")], ids=True),
                    )
                ],
            ),
        },
    ),
    Policy(
        name="scopes",
        jwt_rules=RA_SCOPE,
        specs=(
            (
                "scopes",
                {
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[scope]",
                                    "values": ["write"],
                                }
                            ]
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[permission]",
                                    "values": ["doc:write"],
                                }
                            ]
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[custom_scope]",
                                    "values": ["admin"],
                                }
                            ]
                        },
                        {
                            "when": [
                                {
                                    "key": "request.auth.claims[scope]",
                                    "values": ["read write"],
                                }
                            ]
                        },
                        {
                            "when": [
                                {"key": "request.auth.claims[note]", "values": ["b"]}
                            ]
                        },
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("scopes", 0): rbac_rule(principals=[ids(claims(["scope"], "write"))]),
            pid("scopes", 1): rbac_rule(
                principals=[ids(claims(["permission"], "doc:write"))]
            ),
            pid("scopes", 2): rbac_rule(
                principals=[ids(claims(["custom_scope"], "admin"))]
            ),
            pid("scopes", 3): rbac_rule(
                principals=[ids(claims(["scope"], "read write"))]
            ),
            pid("scopes", 4): rbac_rule(principals=[ids(claims(["note"], "b"))]),
        },
    ),
    Policy(
        name="audiences",
        jwt_rules=RA_AUD,
        specs=(
            (
                "audiences",
                {
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.auth.audiences",
                                    "values": ["other-api", "strict"],
                                }
                            ]
                        },
                        {"from": [{"source": {"requestPrincipals": [f"{ISS2}/*"]}}]},
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("audiences", 0): rbac_rule(
                principals=[ids(claims(["aud"], "other-api", "strict"))]
            ),
            pid("audiences", 1): rbac_rule(principals=[ids(principals(f"{ISS2}/*"))]),
        },
    ),
    Policy(
        name="paths",
        jwt_rules=RA_ONE,
        specs=(
            (
                "paths",
                {
                    "rules": [
                        {
                            "to": [
                                {
                                    "operation": {
                                        "paths": [
                                            "/exact",
                                            "/prefix/*",
                                            "*/suffix.json",
                                        ]
                                    }
                                }
                            ]
                        },
                        {"to": [{"operation": {"paths": ["/info*"]}}]},
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("paths", 0): rbac_rule(
                permissions=[
                    ops(
                        any_of(
                            [path("/exact"), path("/prefix/*"), path("*/suffix.json")]
                        )
                    )
                ]
            ),
            pid("paths", 1): rbac_rule(permissions=[ops(any_of([path("/info*")]))]),
        },
    ),
    Policy(
        name="templates",
        jwt_rules=RA_ONE,
        specs=(
            (
                "templates",
                {
                    "rules": [
                        {
                            "to": [
                                {
                                    "operation": {
                                        "paths": [
                                            "/store/{*}/cart",
                                            "/files/{**}",
                                            "/a/{*}/b/{**}",
                                        ],
                                        "notPaths": ["/files/secret*"],
                                    }
                                }
                            ]
                        }
                    ]
                },
            ),
        ),
        deny=None,
        allow={
            pid("templates", 0): rbac_rule(
                permissions=[
                    ops(
                        any_of(
                            [
                                path("/store/{*}/cart"),
                                path("/files/{**}"),
                                path("/a/{*}/b/{**}"),
                            ]
                        ),
                        none_of([path("/files/secret*")]),
                    )
                ]
            )
        },
    ),
    Policy(
        name="methods-hosts",
        jwt_rules=RA_ONE,
        specs=(
            (
                "no-delete",
                {
                    "action": "DENY",
                    "rules": [
                        {"to": [{"operation": {"methods": ["DELETE"]}}]},
                        {"to": [{"operation": {"hosts": ["internal.example.com"]}}]},
                    ],
                },
            ),
            (
                "hosts",
                {
                    "action": "ALLOW",
                    "rules": [
                        {
                            "to": [
                                {
                                    "operation": {
                                        "hosts": [
                                            "api.example.com",
                                            "*.svc.local",
                                            "shop.example.com:*",
                                        ],
                                        "methods": ["GET", "HEAD", "POST", "DELETE"],
                                    }
                                }
                            ]
                        }
                    ],
                },
            ),
        ),
        deny={
            pid("no-delete", 0): rbac_rule(
                permissions=[ops(any_of([method("DELETE")]))]
            ),
            pid("no-delete", 1): rbac_rule(
                permissions=[ops(any_of([host("internal.example.com")]))]
            ),
        },
        allow={
            pid("hosts", 0): rbac_rule(
                permissions=[
                    ops(
                        any_of(
                            [
                                host("api.example.com"),
                                host("*.svc.local"),
                                host("shop.example.com:*"),
                            ]
                        ),
                        any_of([method(m) for m in ("GET", "HEAD", "POST", "DELETE")]),
                    )
                ]
            )
        },
    ),
    Policy(
        name="headers",
        jwt_rules=RA_ONE,
        specs=(
            (
                "banned",
                {
                    "action": "DENY",
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.headers[x-role]",
                                    "values": ["banned"],
                                }
                            ]
                        }
                    ],
                },
            ),
            (
                "tenants",
                {
                    "action": "ALLOW",
                    "rules": [
                        {
                            "when": [
                                {
                                    "key": "request.headers[X-Tenant]",
                                    "values": ["acme", "globex*"],
                                },
                                {
                                    "key": "request.headers[x-debug]",
                                    "notValues": ["1"],
                                },
                            ]
                        }
                    ],
                },
            ),
        ),
        deny={
            pid("banned", 0): rbac_rule(
                permissions=[ops(any_of([header("x-role", "banned")]))]
            )
        },
        allow={
            pid("tenants", 0): rbac_rule(
                permissions=[
                    ops(
                        any_of(
                            [header("x-tenant", "acme"), header("x-tenant", "globex*")]
                        ),
                        none_of([header("x-debug", "1")]),
                    )
                ]
            )
        },
    ),
    Policy(
        name="deny-and-allow",
        jwt_rules=RA_ONE,
        specs=(
            (
                "deny-get",
                {
                    "action": "DENY",
                    "rules": [
                        {
                            "to": [{"operation": {"methods": ["GET"]}}],
                            "when": [
                                {
                                    "key": "request.headers[x-token]",
                                    "notValues": ["admin"],
                                }
                            ],
                        }
                    ],
                },
            ),
            (
                "allow-ip",
                {
                    "action": "ALLOW",
                    "rules": [{"to": [{"operation": {"paths": ["/ip"]}}]}],
                },
            ),
        ),
        deny={
            pid("deny-get", 0): rbac_rule(
                permissions=[
                    ops(
                        any_of([method("GET")]),
                        none_of([header("x-token", "admin")]),
                    )
                ]
            )
        },
        allow={pid("allow-ip", 0): rbac_rule(permissions=[ops(any_of([path("/ip")]))])},
    ),
    Policy(
        name="allow-all",
        jwt_rules=RA_MAIN,
        specs=(("allow-all", {"action": "ALLOW", "rules": [{}]}),),
        deny=None,
        allow={pid("allow-all", 0): rbac_rule()},
    ),
    Policy(
        name="allow-nothing",
        jwt_rules=RA_MAIN,
        specs=(("allow-nothing", {}),),
        deny=None,
        allow={},
    ),
    Policy(
        name="api-mixed",
        jwt_rules=RA_MAIN,
        specs=(
            (
                "api-admin",
                {
                    "action": "DENY",
                    "rules": [
                        {
                            "from": [
                                {"source": {"notRequestPrincipals": [f"{ISS}/alice"]}}
                            ],
                            "to": [{"operation": {"paths": ["/api/admin*"]}}],
                        }
                    ],
                },
            ),
            (
                "api",
                {
                    "action": "ALLOW",
                    "rules": [
                        {
                            "from": [{"source": {"requestPrincipals": [f"{ISS}/*"]}}],
                            "to": [{"operation": {"paths": ["/api/*"]}}],
                        },
                        {"to": [{"operation": {"paths": ["/public/*"]}}]},
                    ],
                },
            ),
        ),
        deny={
            pid("api-admin", 0): rbac_rule(
                permissions=[ops(any_of([path("/api/admin*")]))],
                principals=[ids(none_of([principal(f"{ISS}/alice")], ids=True))],
            )
        },
        allow={
            pid("api", 0): rbac_rule(
                permissions=[ops(any_of([path("/api/*")]))],
                principals=[ids(principals(f"{ISS}/*"))],
            ),
            pid("api", 1): rbac_rule(permissions=[ops(any_of([path("/public/*")]))]),
        },
    ),
)
