"""Where the native Envoy (Istio) and authz-server disagree, and why.

:data:`EXPECTED` maps (policy, request label) to (Istio status, authz-server
status, justification). Every justification names the rule of the spec
(``/work/shared/ISTIO-SEMANTICS.md``) that describes Istio's side and the README row
("Where we differ from Istio on purpose (stricter)") that documents ours. The
differential test fails on any disagreement not listed here, and on any listed one
that no longer happens.

Not reachable here: lower-case methods (README: DENY also matches the upper-cased
method). Envoy's HTTP/1 codec answers ``get``/``Delete`` with 400 before any filter,
on both sides, so the difference needs HTTP/2.
"""

from __future__ import annotations

PREFIX = (
    "RA-8.3 / V27: Istio finds no token in 'authorization: bearer <jwt>' "
    "(prefix is case-sensitive) and goes on without identity; README 'Where we "
    "differ': a JWT without the configured prefix is 401 jwt_prefix_mismatch"
)
MULTIPLE = (
    "RA-3(i) / RA-16: two different valid tokens (Authorization + access_token) "
    "both verify for the rule, so Istio passes with an undefined principal; README "
    "'Where we differ' (several different tokens): 401 jwt_multiple_tokens"
)
PATH_DENY = (
    "PA-3 BASE keeps '//', '%2F' and ';x', so Istio's DENY paths / notPaths miss "
    "these PA-5 shapes (CVE-2021-31920); README 'Where we differ' (BASE row): DENY "
    "rules and notPaths also look at the decoded and decoded+merged views"
)
PATH_ALLOW = (
    "PA-3 BASE keeps '%2F', so Istio's ALLOW paths match the raw shape (PA-5 "
    "'/public/..%2Fadmin'); README 'Where we differ' (BASE row): ALLOW paths must "
    "match the decoded view too"
)
BAD_ESCAPE = (
    "PA-3: BASE leaves a malformed %-escape as it is and Istio evaluates the path; "
    "README 'Where we differ': paths with bad % escapes are 400 (cannot be "
    "normalised safely)"
)
HEADER_PIECES = (
    "HD-1: Istio never splits commas inside one header line (and Envoy 1.40 matches "
    "each line apart, a negation holding when no line matches); README 'Where we "
    "differ' (repeated header row): DENY rules and notValues look at every "
    "comma-separated piece"
)
HEADER_WHOLE = (
    "HD-1: Envoy 1.40 matches each line of a repeated header apart, so one 'acme' "
    "line satisfies an ALLOW; the CheckRequest carries only 'acme,other' (CU-5); "
    "README 'Where we differ' (repeated header row): ALLOW values need the whole "
    "value"
)

EXPECTED: dict[tuple[str, str], tuple[int, int, str]] = {}


def _add(why: str, policy: str, istio: int, ours: int, *labels: str) -> None:
    for label in labels:
        EXPECTED[(policy, label)] = (istio, ours, why)


# --- tokens ------------------------------------------------------------------------
_add(PREFIX, "require-jwt", 403, 401, "GET /data tok=alice@lower")
_add(PREFIX, "require-jwt", 403, 401, "GET /data tok=nosub@lower")
_add(MULTIPLE, "require-jwt", 200, 401, "GET /data tok=alice@two")
_add(MULTIPLE, "require-jwt", 403, 401, "GET /data tok=nosub@two")
for _policy, _path in (("principals", "/p"), ("claims", "/"), ("nested", "/")):
    _add(PREFIX, _policy, 403, 401, f"GET {_path} tok=bob@lower")
_add(PREFIX, "scopes", 403, 401, "GET / tok=bob@lower")
_add(PREFIX, "audiences", 403, 401, "GET / tok=bob@lower", "GET / tok=strictaud@lower")
_add(MULTIPLE, "audiences", 200, 401, "GET / tok=strictaud@two")
_add(PREFIX, "deny-admin", 403, 401, "GET /admin tok=alice@lower")
_add(PREFIX, "deny-admin", 403, 401, "GET /admin tok=bob@lower")
_add(MULTIPLE, "deny-admin", 200, 401, "GET /admin tok=alice@two")
_add(PREFIX, "allow-all", 200, 401, "GET / tok=alice@lower")
_add(MULTIPLE, "allow-all", 200, 401, "GET / tok=alice@two")
_add(PREFIX, "allow-nothing", 403, 401, "GET / tok=alice@lower")
_add(MULTIPLE, "allow-nothing", 403, 401, "GET / tok=alice@two")

# --- paths ---------------------------------------------------------------------------
for _token in ("", " tok=bob"):
    _add(
        PATH_DENY,
        "deny-admin",
        200,
        403,
        *(
            f"GET {path}{_token}"
            for path in (
                "//admin",
                "/%2Fadmin",
                "/admin%2Fx",
                "/admin;x",
                "/public/..%2Fadmin",
            )
        ),
    )
    _add(BAD_ESCAPE, "deny-admin", 200, 400, f"GET /admin%zz{_token}")
_add(BAD_ESCAPE, "deny-admin", 200, 400, "GET /admin%zz tok=alice")
_add(BAD_ESCAPE, "paths", 403, 400, "GET /admin%zz")
_add(BAD_ESCAPE, "allow-all", 200, 400, "GET /admin%zz")
_add(BAD_ESCAPE, "allow-nothing", 403, 400, "GET /admin%zz")
_add(PATH_ALLOW, "paths", 200, 403, "GET /prefix/..%2Fadmin")
_add(PATH_ALLOW, "templates", 200, 403, "GET /files/..%2Fsecret")
_add(PATH_ALLOW, "templates", 200, 403, "GET /store/x%2Fy/cart")
_add(PATH_DENY, "templates", 200, 403, "GET /files//secret")
_add(
    PATH_DENY,
    "api-mixed",
    200,
    403,
    "GET /api//admin tok=bob",
    "GET /api/x/..%2Fadmin tok=bob",
)
for _token in ("", " tok=alice", " tok=bob", " tok=dave2"):
    _add(
        PATH_ALLOW,
        "api-mixed",
        200,
        403,
        f"GET /public/..%2Fapi/admin{_token}",
        f"GET /public/..%2fapi%2fx{_token}",
    )

# --- headers ---------------------------------------------------------------------
_add(
    HEADER_PIECES,
    "headers",
    200,
    403,
    "GET / X-Tenant:acme x-debug:1,0",
    "GET / X-Tenant:acme x-role:user,banned",
    "GET / x-tenant:globex-eu x-debug:1,0",
    "GET / x-tenant:globex-eu x-role:user,banned",
)
for _lines in ("x-tenant:acme x-tenant:other", "x-tenant:other x-tenant:acme"):
    _add(
        HEADER_WHOLE,
        "headers",
        200,
        403,
        *(
            f"GET / {_lines}{extra}"
            for extra in (
                "",
                " X-ROLE:Banned",
                " x-debug:0",
                " x-debug:1,0",
                " x-role:user,banned",
            )
        ),
    )
_add(HEADER_PIECES, "deny-and-allow", 200, 403, "GET /ip x-token:guest x-token:admin")
