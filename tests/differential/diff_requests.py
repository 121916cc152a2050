"""The differential requests: tokens with varied claims, and requests per policy.

Everything is deterministic: tokens are described here and minted per session
(their ``exp``/``nbf`` are relative to now), and each policy's requests are fixed
sweeps plus a sample drawn with ``random.Random(<policy name>)``. A request's
:attr:`Req.label` names it in failure messages and in the expected-disagreement
table, so labels are unique per policy.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from diff_policies import AUDIENCE, ISS, ISS2

from authz_server import tokens

KID = "diff-key-1"
HOST = "api.example.com"

Header = tuple[str, str]

# name -> (claims, options). Options: "signer" ("other": a key the JWKS does not
# hold, same kid), "exp"/"nbf" offsets from now in seconds.
TOKEN_SPECS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "alice": (
        {
            "iss": ISS,
            "sub": "alice",
            "aud": AUDIENCE,
            "roles": "admin",
            "groups": ["eng", "ops"],
            "scope": "read write",
            "permission": "doc:read",
            "custom_scope": "admin user",
            "note": "a b",
            "org": {"team": {"name": "core"}},
        },
        {},
    ),
    "bob": (
        {
            "iss": ISS,
            "sub": "bob",
            "aud": [AUDIENCE, "other-api"],
            "roles": ["user", "viewer"],
            "groups": "eng",
            "scope": "read",
            "permission": "doc:read doc:write",
            "custom_scope": "user",
            "org": {"team": {"name": "web"}},
        },
        {},
    ),
    "carol": (
        {
            "iss": ISS,
            "sub": "carol",
            "aud": AUDIENCE,
            "roles": ["admin", "user"],
            "groups": ["ops"],
            "admin": True,
            "level": 3,
            "scope": ["read write"],
            "org": {"team": "core"},
        },
        {},
    ),
    "dave2": (
        {"iss": ISS2, "sub": "dave", "aud": "anything", "roles": "admin"},
        {},
    ),
    "nosub": ({"iss": ISS, "aud": AUDIENCE, "roles": "admin", "groups": "eng"}, {}),
    "emptysub": ({"iss": ISS, "sub": "", "aud": AUDIENCE, "roles": "viewer"}, {}),
    "wrongaud": ({"iss": ISS, "sub": "alice", "aud": "nope", "roles": "admin"}, {}),
    "urlaud": (
        {"iss": ISS, "sub": "erin", "aud": f"https://{AUDIENCE}/", "roles": "viewer"},
        {},
    ),
    "strictaud": ({"iss": ISS, "sub": "frank", "aud": "strict"}, {}),
    "expired": (
        {"iss": ISS, "sub": "alice", "aud": AUDIENCE, "roles": "admin"},
        {"exp": -3600},
    ),
    "skewed": (
        {"iss": ISS, "sub": "alice", "aud": AUDIENCE, "roles": "admin"},
        {"nbf": 30},
    ),
    "future": (
        {"iss": ISS, "sub": "alice", "aud": AUDIENCE, "roles": "admin"},
        {"nbf": 3600},
    ),
    "badsig": (
        {"iss": ISS, "sub": "alice", "aud": AUDIENCE, "roles": "admin"},
        {"signer": "other"},
    ),
    "unknowniss": (
        {"iss": "https://evil.example.com", "sub": "alice", "aud": AUDIENCE},
        {},
    ),
}
LITERAL_TOKENS = {"garbage": "invalidToken"}
TOKEN_NAMES = ("none", *TOKEN_SPECS, *LITERAL_TOKENS)


def mint_all(key: tokens.PrivateKey, other: tokens.PrivateKey) -> dict[str, str]:
    """Every token of :data:`TOKEN_SPECS`, minted now, plus the literal ones."""
    now = time.time()
    minted = dict(LITERAL_TOKENS)
    for name, (claims, options) in TOKEN_SPECS.items():
        payload = dict(claims)
        if "exp" in options:
            payload["exp"] = int(now + options["exp"])
        if "nbf" in options:
            payload["nbf"] = int(now + options["nbf"])
        signer = other if options.get("signer") == "other" else key
        minted[name] = tokens.mint(signer, KID, payload, now=now)
    return minted


@dataclass(frozen=True)
class Req:
    """One request; ``token`` is a token name, ``at`` where it goes.

    ``at``: ``auth`` (``Authorization: Bearer``), ``query`` (``access_token``),
    ``lower`` (``authorization: bearer``: no token for Istio), ``two`` (this token
    in ``Authorization`` and ``bob`` in the query), ``dup`` (the same token in
    both), ``lines`` (two ``Authorization`` lines: this token and ``bob``).
    """

    method: str = "GET"
    path: str = "/"
    host: str = HOST
    headers: tuple[Header, ...] = ()
    token: str = "none"
    at: str = "auth"

    @property
    def label(self) -> str:
        parts = [self.method, self.path]
        if self.host != HOST:
            parts.append(f"host={self.host}")
        parts.extend(f"{name}:{value}" for name, value in self.headers)
        if self.token != "none":
            parts.append(
                f"tok={self.token}" + ("" if self.at == "auth" else f"@{self.at}")
            )
        return " ".join(parts)

    def wire(self, minted: dict[str, str]) -> tuple[str, str, list[Header]]:
        """(method, request target, headers) as sent."""
        headers = [("Host", self.host), *self.headers]
        target = self.path
        if self.token == "none":
            return self.method, target, headers
        token = minted[self.token]
        second = minted["bob"] if self.at in ("two", "lines") else token
        if self.at in ("auth", "two", "dup", "lines"):
            headers.append(("Authorization", f"Bearer {token}"))
        if self.at == "lower":
            headers.append(("authorization", f"bearer {token}"))
        if self.at == "lines":
            headers.append(("Authorization", f"Bearer {second}"))
        if self.at in ("query", "two", "dup"):
            query = second if self.at != "query" else token
            target += ("&" if "?" in target else "?") + f"access_token={query}"
        return self.method, target, headers


TRICKY_PATHS = (
    "/admin",
    "/admin/",
    "//admin",
    "/admin//x",
    "/a/../admin",
    "/./admin",
    "/%61dmin",
    "/%2e%2e/admin",
    "/x/%2E%2E/admin",
    "/admin%2Fx",
    "/%2Fadmin",
    "/admin;x",
    "/admin/;x",
    "/ADMIN",
    "/admin?x=1",
    "/admin#frag",
    "/public/..%2Fadmin",
    "/x\\..\\admin",
    "/admin%zz",
    "/admin%00",
    "/admin/x",
)


def token_sweep(paths: Sequence[str], method: str = "GET") -> list[Req]:
    """Every token in ``Authorization`` on each path."""
    return [Req(method, p, token=t) for p in paths for t in TOKEN_NAMES]


def placements(path: str, token: str = "alice") -> list[Req]:
    """``token`` in every location shape."""
    places = ("query", "lower", "two", "dup", "lines")
    return [Req("GET", path, token=token, at=at) for at in places]


def cors(path: str) -> list[Req]:
    """CORS preflights (RA-20) and a plain OPTIONS, with bad and good tokens."""
    preflight = (
        ("Origin", "https://web.example"),
        ("Access-Control-Request-Method", "POST"),
    )
    return [
        Req("OPTIONS", path, headers=preflight, token="expired"),
        Req("OPTIONS", path, headers=preflight, token="alice"),
        Req("OPTIONS", path, headers=preflight),
        Req("OPTIONS", path, headers=preflight[:1], token="expired"),
    ]


def sample(rng: random.Random, items: Iterable[Req], count: int) -> list[Req]:
    pool = list(items)
    return pool if len(pool) <= count else rng.sample(pool, count)


def products(**dims: Sequence[Any]) -> Iterable[Req]:
    names = list(dims)
    for combo in itertools.product(*(dims[n] for n in names)):
        yield Req(**dict(zip(names, combo, strict=True)))


def requests_for(policy: str) -> list[Req]:
    """The requests sent to both Envoys for ``policy`` (unique labels)."""
    rng = random.Random(policy)
    reqs: list[Req] = []
    if policy == "require-jwt":
        reqs += token_sweep(["/", "/data?x=1"])
        reqs += placements("/data") + placements("/data", "nosub") + cors("/data")
    elif policy == "principals":
        reqs += token_sweep(["/p"])
        reqs += [Req(m, "/p", token=t) for m in ("POST", "DELETE") for t in TOKEN_NAMES]
        reqs += placements("/p", "bob")
    elif policy == "deny-admin":
        reqs += products(path=TRICKY_PATHS, token=("none", "alice", "bob"))
        reqs += token_sweep(["/admin/y"])
        reqs += placements("/admin", "alice") + placements("/admin", "bob")
    elif policy in ("claims", "nested", "scopes"):
        reqs += token_sweep(["/", "/guest", "/other"])
        reqs += placements("/", "bob")
    elif policy == "audiences":
        reqs += token_sweep(["/"])
        reqs += placements("/", "strictaud") + placements("/", "bob")
    elif policy == "paths":
        paths = (
            *TRICKY_PATHS,
            "/exact",
            "/exact/",
            "/exact?q=/prefix/x",
            "/EXACT",
            "/prefix",
            "/prefix/",
            "/prefix/a/b",
            "/prefix/../exact",
            "/prefix/..%2Fadmin",
            "/prefix%2Fx",
            "/x/suffix.json",
            "/suffix.json",
            "/x/suffix.json;v=1",
            "/x/suffix%2Ejson",
            "/info",
            "/infox",
            "/info/a",
            "/i%6Efo",
            "//info",
            "/",
        )
        reqs += products(path=paths)
        reqs += sample(rng, products(path=paths, token=("alice", "expired")), 12)
    elif policy == "templates":
        paths = (
            "/store/x/cart",
            "/store//cart",
            "/store/x/y/cart",
            "/store/x%2Fy/cart",
            "/store/x;y/cart",
            "/store/x=y/cart",
            "/store/%2e/cart",
            "/files/",
            "/files",
            "/files/a/b.txt",
            "/files/secret",
            "/files/secret/x",
            "/files//secret",
            "/files/%73ecret",
            "/files/x/../secret",
            "/files/..%2Fsecret",
            "/files/secret;x",
            "/files/a?x=/secret",
            "/a/x/b/",
            "/a/x/b",
            "/a//b/c",
            "/a/x/b/c/d",
            "/a/x/b/c%20d",
            "/store/x*y/cart",
            "/store/k=v/cart",
            "/files/k=v",
            "/a/x/b/k=v",
            "/files/a*b",
            '/store/x"y/cart',
            "/store/x^y/cart",
            "/store/x[y/cart",
            "/store/x{y/cart",
        )
        reqs += products(path=paths)
    elif policy == "methods-hosts":
        hosts = (
            HOST,
            "API.Example.COM",
            f"{HOST}:8080",
            "db.svc.local",
            "db.svc.local:80",
            "shop.example.com",
            "shop.example.com:443",
            "SHOP.example.com:1",
            "internal.example.com",
            "Internal.Example.Com:80",
            "evil.com",
        )
        methods = ("GET", "HEAD", "POST", "DELETE", "PUT", "get", "delete", "Delete")
        reqs += sample(rng, products(method=methods, host=hosts), 48)
        reqs += [Req(m, "/", host=h) for m in ("delete", "DELETE") for h in hosts[:3]]
        reqs += [Req("GET", "/", token=t) for t in TOKEN_NAMES]
        reqs = list(dict.fromkeys(reqs))
    elif policy == "headers":
        tenants = (
            (),
            (("X-Tenant", "acme"),),
            (("x-tenant", "Acme"),),
            (("x-tenant", "globex-eu"),),
            (("x-tenant", "acme,other"),),
            (("x-tenant", "acme"), ("x-tenant", "other")),
            (("x-tenant", "other"), ("x-tenant", "acme")),
            (("x-tenant", ""),),
        )
        others = (
            (),
            (("x-role", "banned"),),
            (("x-role", "user,banned"),),
            (("x-role", "user"), ("x-role", "banned")),
            (("X-ROLE", "Banned"),),
            (("x-debug", "1"),),
            (("x-debug", "0"),),
            (("x-debug", "0"), ("x-debug", "1")),
            (("x-debug", "1,0"),),
        )
        reqs += [Req(headers=t + o) for t in tenants for o in others]
        reqs += [Req(headers=tenants[1], token=t) for t in TOKEN_NAMES[1:]]
    elif policy == "deny-and-allow":
        heads = ((), (("x-token", "admin"),), (("x-token", "guest"),))
        heads += (
            (("x-token", "guest"), ("x-token", "admin")),
            (("x-token", "admin,x"),),
        )
        reqs += products(
            method=("GET", "POST", "get"),
            path=("/ip", "/get", "/ip/", "//ip"),
            headers=heads,
        )
        reqs += [Req("POST", "/ip", token=t) for t in TOKEN_NAMES[1:]]
    elif policy in ("allow-all", "allow-nothing"):
        reqs += token_sweep(["/"])
        reqs += placements("/")
        reqs += cors("/")
        reqs += [Req(path=p) for p in TRICKY_PATHS]
    elif policy == "api-mixed":
        paths = (
            "/api/x",
            "/api/admin",
            "/api/admin/x",
            "/api//admin",
            "/api/%61dmin",
            "/api/x/../admin",
            "/api/x/..%2Fadmin",
            "/api/admin;x",
            "/public/x",
            "/public/../api/admin",
            "/public/..%2Fapi/admin",
            "/public/..%2fapi%2fx",
            "/public/x;/../../api/admin",
            "/public",
            "/api",
        )
        reqs += products(path=paths, token=("none", "alice", "bob", "dave2"))
    else:
        raise KeyError(policy)
    labels = [r.label for r in reqs]
    duplicates = {label for label in labels if labels.count(label) > 1}
    assert not duplicates, f"{policy}: duplicate requests {sorted(duplicates)}"
    return reqs
