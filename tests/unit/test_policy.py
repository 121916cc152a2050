"""AuthorizationPolicy: matchers, conditions and evaluation order, table-driven."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_server import config
from authz_server.authn.jwks import KeyRegistry
from authz_server.authz.evaluate import evaluate
from authz_server.authz.paths import views
from authz_server.authz.policy import CompiledPolicy, Context, compile_policy
from authz_server.decision import Identity
from authz_server.errors import ConfigError, PolicyDenied
from authz_server.request import Request
from authz_server.settings import Settings
from authz_server.snapshot import build


def policies(tmp_path: Path, *specs: dict[str, Any]) -> list[CompiledPolicy]:
    documents = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": f"p{index}",
                "namespace": "foo",
                **spec.pop("meta", {}),
            },
            "spec": spec,
        }
        for index, spec in enumerate(specs)
    ]
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return [compile_policy(p) for p in config.load([str(path)]).authorization_policies]


def context(
    *,
    method: str = "GET",
    path: str = "/",
    host: str = "api.example.com",
    headers: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
    source_principal: str = "",
    source_ip: str = "10.0.0.1",
    port: int | None = 8080,
) -> Context:
    request = Request(
        method=method,
        host=host,
        raw_path=path,
        headers=headers or {},
        source_principal=source_principal,
        source_ip=source_ip,
        destination_ip="10.0.0.2",
        destination_port=port,
    )
    identity = None
    if claims is not None:
        identity = Identity(claims.get("iss", ""), claims.get("sub", ""), claims, "r")
    return Context(request, identity, views(request.path), source_ip)


def allowed(found: list[CompiledPolicy], ctx: Context) -> bool:
    try:
        evaluate(found, ctx)
    except PolicyDenied:
        return False
    return True


def allow_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {"action": "ALLOW", "rules": [rule]}


def to(**operation: Any) -> dict[str, Any]:
    return {"to": [{"operation": operation}]}


def source(**fields: Any) -> dict[str, Any]:
    return {"from": [{"source": fields}]}


def when(
    key: str, values: list[str] | None = None, not_values: list[str] | None = None
) -> dict[str, Any]:
    condition: dict[str, Any] = {"key": key}
    if values is not None:
        condition["values"] = values
    if not_values is not None:
        condition["notValues"] = not_values
    return {"when": [condition]}


ISS1 = {"iss": "test-issuer-1@istio.io", "sub": "sub-1"}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # paths (PA-1, PA-2)
    ("path-exact", to(paths=["/allow"]), {"path": "/allow?param=value"}, True),
    ("path-exact-miss", to(paths=["/allow"]), {"path": "/allow/"}, False),
    ("path-prefix", to(paths=["/info*"]), {"path": "/infox"}, True),
    ("path-prefix-slash", to(paths=["/a/*"]), {"path": "/a"}, False),
    ("path-suffix", to(paths=["*/a"]), {"path": "/x/a"}, True),
    ("path-any", to(paths=["*"]), {"path": "/"}, True),
    ("template-any", to(paths=["/allow/admin/{**}"]), {"path": "/allow/admin/"}, True),
    (
        "template-any-no-slash",
        to(paths=["/allow/admin/{**}"]),
        {"path": "/allow/admin"},
        False,
    ),
    (
        "template-seg",
        to(paths=["/foo/{*}/bar/{**}"]),
        {"path": "/foo/buzz/bar/bat"},
        True,
    ),
    (
        "template-empty-seg",
        to(paths=["/foo/{*}/bar/{**}"]),
        {"path": "/foo//bar/x"},
        False,
    ),
    ("template-middle", to(paths=["/store/{**}/cart"]), {"path": "/store//cart"}, True),
    (
        "template-middle-miss",
        to(paths=["/store/{**}/cart"]),
        {"path": "/store/cart"},
        False,
    ),
    ("not-paths", to(notPaths=["/admin*"]), {"path": "/public"}, True),
    ("not-paths-hit", to(notPaths=["/admin*"]), {"path": "/admin/x"}, False),
    # hosts (AP-6)
    ("host-case", to(hosts=["httpbin.foo"]), {"host": "HTTPBIN.FOO"}, True),
    ("host-port", to(hosts=["httpbin.foo"]), {"host": "httpbin.foo:8000"}, False),
    ("host-wildcard", to(hosts=["*.Example.com"]), {"host": "api.example.COM"}, True),
    (
        "host-port-pattern",
        to(hosts=["httpbin.foo:*"]),
        {"host": "httpbin.foo:8000"},
        True,
    ),
    # methods, ports (AP-7, AP-8)
    ("method", to(methods=["GET"]), {"method": "GET"}, True),
    ("method-case", to(methods=["GET"]), {"method": "get"}, False),
    ("port", to(ports=["8080"]), {"port": 8080}, True),
    ("not-port", to(notPorts=["8080"]), {"port": 8080}, False),
    # request principals (ID-1)
    ("rp-any", source(requestPrincipals=["*"]), {"claims": ISS1}, True),
    ("rp-any-no-token", source(requestPrincipals=["*"]), {}, False),
    ("rp-any-no-sub", source(requestPrincipals=["*"]), {"claims": {"iss": "i"}}, False),
    (
        "rp-exact",
        source(requestPrincipals=["test-issuer-1@istio.io/sub-1"]),
        {"claims": ISS1},
        True,
    ),
    (
        "rp-iss-star",
        source(requestPrincipals=["test-issuer-1@istio.io/*"]),
        {"claims": ISS1},
        True,
    ),
    ("rp-star-sub", source(requestPrincipals=["*/sub-1"]), {"claims": ISS1}, True),
    (
        "rp-sub-prefix",
        source(requestPrincipals=["test-issuer-1@istio.io/sub*"]),
        {"claims": ISS1},
        True,
    ),
    (
        "rp-other-iss",
        source(requestPrincipals=["test-issuer-2@istio.io/*"]),
        {"claims": ISS1},
        False,
    ),
    ("rp-star-star", source(requestPrincipals=["*/*"]), {"claims": ISS1}, False),
    (
        "rp-no-slash",
        source(requestPrincipals=["test-issuer-1@istio.io"]),
        {"claims": ISS1},
        False,
    ),
    (
        "rp-url-issuer",
        source(requestPrincipals=["https://a.com/x/*"]),
        {"claims": {"iss": "https://a.com", "sub": "x/y"}},
        False,
    ),
    ("not-rp-no-token", source(notRequestPrincipals=["*"]), {}, True),
    # peer identity (principals, namespaces)
    (
        "principal",
        source(principals=["cluster.local/ns/foo/sa/bar"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/bar"},
        True,
    ),
    (
        "principal-suffix",
        source(principals=["*/sa/bar"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/bar"},
        True,
    ),
    ("principal-no-mtls", source(principals=["*"]), {}, False),
    ("not-principal-no-mtls", source(notPrincipals=["*"]), {}, True),
    (
        "namespace",
        source(namespaces=["foo"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/bar"},
        True,
    ),
    (
        "namespace-other",
        source(namespaces=["fo"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/bar"},
        False,
    ),
    (
        "service-account",
        source(serviceAccounts=["foo/bar"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/bar"},
        True,
    ),
    (
        "service-account-dot",
        source(serviceAccounts=["foo/a.b"]),
        {"source_principal": "spiffe://cluster.local/ns/foo/sa/aXb"},
        False,
    ),
    # ip blocks
    ("ip-block", source(ipBlocks=["10.0.0.0/24"]), {"source_ip": "10.0.0.9"}, True),
    ("ip-single", source(ipBlocks=["10.0.0.1"]), {"source_ip": "10.0.0.2"}, False),
    (
        "not-ip-block",
        source(notIpBlocks=["10.0.0.0/8"]),
        {"source_ip": "192.168.0.1"},
        True,
    ),
    # conditions (AP-10, ID-4, ID-5)
    (
        "claim-list",
        when("request.auth.claims[groups]", ["group1"]),
        {"claims": {"groups": ["group1", "group2"]}},
        True,
    ),
    (
        "claim-bool",
        when("request.auth.claims[admin]", ["true"]),
        {"claims": {"admin": True}},
        False,
    ),
    (
        "claim-number",
        when("request.auth.claims[level]", ["3"]),
        {"claims": {"level": 3}},
        False,
    ),
    (
        "claim-star-number",
        when("request.auth.claims[level]", ["*"]),
        {"claims": {"level": 3}},
        False,
    ),
    (
        "claim-nested",
        when("request.auth.claims[nested][nested-2][key1]", ["valueA"]),
        {"claims": {"nested": {"nested-2": {"key1": ["valueA"]}}}},
        True,
    ),
    (
        "claim-dotted-name",
        when("request.auth.claims[a.b]", ["flat"]),
        {"claims": {"a.b": "flat", "a": {"b": "nested"}}},
        True,
    ),
    (
        "claim-dotted-not-nested",
        when("request.auth.claims[a.b]", ["nested"]),
        {"claims": {"a.b": "flat", "a": {"b": "nested"}}},
        False,
    ),
    (
        "claim-url-name",
        when("request.auth.claims[https://example.com/roles]", ["admin"]),
        {"claims": {"https://example.com/roles": ["admin"]}},
        True,
    ),
    (
        "claim-object",
        when("request.auth.claims[realm_access]", ["x"]),
        {"claims": {"realm_access": {"roles": ["x"]}}},
        False,
    ),
    (
        "claim-missing-not-values",
        when("request.auth.claims[x]", not_values=["a"]),
        {"claims": {}},
        True,
    ),
    (
        "claim-no-token-not-values",
        when("request.auth.claims[x]", not_values=["a"]),
        {},
        True,
    ),
    (
        "audiences",
        when("request.auth.audiences", ["foo"]),
        {"claims": {"aud": ["foo", "buzz"]}},
        True,
    ),
    (
        "presenter",
        when("request.auth.presenter", ["bar"]),
        {"claims": {"azp": "bar"}},
        True,
    ),
    (
        "auth-principal",
        when("request.auth.principal", ["*/sub-1"]),
        {"claims": ISS1},
        True,
    ),
    (
        "header",
        when("request.headers[X-Token]", ["admin"]),
        {"headers": {"x-token": "admin"}},
        True,
    ),
    (
        "header-present",
        when("request.headers[x-token]", ["*"]),
        {"headers": {"x-token": ""}},
        True,
    ),
    (
        "header-absent-not-values",
        when("request.headers[x-token]", not_values=["admin"]),
        {},
        True,
    ),
    (
        "header-joined-allow",
        when("request.headers[x-role]", ["admin"]),
        {"headers": {"x-role": "user,admin"}},
        False,
    ),
    ("source-ip", when("source.ip", ["10.0.0.0/8"]), {"source_ip": "10.1.2.3"}, True),
    ("destination-port", when("destination.port", ["8080"]), {"port": 8080}, True),
    ("destination-ip", when("destination.ip", ["10.0.0.2"]), {}, True),
    (
        "source-namespace",
        when("source.namespace", ["foo"]),
        {"source_principal": "spiffe://td/ns/foo/sa/x"},
        True,
    ),
]


@pytest.mark.parametrize(
    ("rule", "attributes", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_allow_rule_matching(
    tmp_path: Path, rule: dict[str, Any], attributes: dict[str, Any], expected: bool
) -> None:
    found = policies(tmp_path, allow_rule(rule))

    assert allowed(found, context(**attributes)) is expected


def test_scope_claim_is_split_for_matching(tmp_path: Path) -> None:
    found = policies(
        tmp_path, allow_rule(when("request.auth.claims[scope]", ["write"]))
    )

    split = {"scope": ["write", "read"]}
    assert allowed(found, context(claims=split))
    assert not allowed(found, context(claims={"scope": "write read"}))


def test_deny_is_evaluated_before_allow(tmp_path: Path) -> None:
    deny = {
        "action": "DENY",
        "rules": [
            {
                **to(methods=["GET"]),
                **when("request.headers[x-token]", not_values=["admin"]),
            }
        ],
    }
    found = policies(tmp_path, deny, allow_rule(to(paths=["/ip"])))

    assert not allowed(found, context(path="/ip", headers={"x-token": "guest"}))
    assert allowed(found, context(path="/ip", headers={"x-token": "admin"}))
    assert not allowed(found, context(path="/get", headers={"x-token": "admin"}))
    assert allowed(found, context(method="POST", path="/ip"))


@pytest.mark.parametrize(
    "path", ["//admin", "///admin", "/%2Fadmin", "/%5Cadmin", "/x/..%2Fadmin"]
)
def test_allow_not_paths_holds_for_every_view(tmp_path: Path, path: str) -> None:
    found = policies(tmp_path, allow_rule(to(notPaths=["/admin*"])))

    assert allowed(found, context(path="/public"))
    assert not allowed(found, context(path=path))


def test_deny_methods_ignore_case_but_allow_methods_do_not(tmp_path: Path) -> None:
    deny = policies(tmp_path, {"action": "DENY", "rules": [to(methods=["DELETE"])]})
    allow = policies(tmp_path, allow_rule(to(methods=["GET"])))

    assert not allowed(deny, context(method="delete"))
    assert not allowed(allow, context(method="get"))


def test_deny_header_matches_pieces_of_a_raw_line(tmp_path: Path) -> None:
    found = policies(
        tmp_path,
        {"action": "DENY", "rules": [when("request.headers[x-role]", ["admin"])]},
    )
    request = Request(
        method="GET", host="h", raw_path="/", header_lines={"x-role": ("user,admin",)}
    )

    assert not allowed(found, Context(request, None, views("/"), ""))


def test_allow_not_values_sees_every_piece(tmp_path: Path) -> None:
    found = policies(
        tmp_path, allow_rule(when("request.headers[x-role]", not_values=["admin"]))
    )

    assert allowed(found, context(headers={"x-role": "user"}))
    assert not allowed(found, context(headers={"x-role": "user,admin"}))


def test_deny_matches_any_piece_of_a_joined_header(tmp_path: Path) -> None:
    deny = {"action": "DENY", "rules": [when("request.headers[x-role]", ["admin"])]}
    found = policies(tmp_path, deny)

    assert not allowed(found, context(headers={"x-role": "user,admin"}))
    assert allowed(found, context(headers={"x-role": "user"}))


@pytest.mark.parametrize(
    "path",
    [
        "//admin",
        "/admin",
        "/x/../admin",
        "/%2Fadmin",
        "/admin;x=1",
        "/admin/",
        "/admin?x",
        "/admin#x",
    ],
)
def test_deny_path_catches_every_shape(tmp_path: Path, path: str) -> None:
    found = policies(tmp_path, {"action": "DENY", "rules": [to(paths=["/admin"])]})

    assert not allowed(found, context(path=path))


def test_allow_prefix_does_not_allow_an_escaped_traversal(tmp_path: Path) -> None:
    found = policies(tmp_path, allow_rule(to(paths=["/public/*"])))

    assert allowed(found, context(path="/public/file"))
    assert not allowed(found, context(path="/public/..%2Fadmin"))
    assert not allowed(found, context(path="/public/..;/admin"))


def test_empty_spec_allows_nothing_and_empty_rule_allows_all(tmp_path: Path) -> None:
    assert not allowed(policies(tmp_path, {}), context())
    assert allowed(policies(tmp_path, {"rules": [{}]}), context())


def test_no_allow_policy_allows(tmp_path: Path) -> None:
    found = policies(tmp_path, {"action": "DENY", "rules": [to(paths=["/admin"])]})

    assert allowed(found, context(path="/public"))


def test_dry_run_policies_are_recorded_not_enforced(tmp_path: Path) -> None:
    dry = {
        "meta": {"annotations": {"istio.io/dry-run": "true"}},
        **allow_rule(to(paths=["/allow"])),
    }
    enforced = allow_rule(to(paths=["/another"]))
    found = policies(tmp_path, dry, enforced)

    assert allowed(found, context(path="/another"))
    with pytest.raises(PolicyDenied) as caught:
        evaluate(found, context(path="/allow"))
    assert [m.policy for m in caught.value.dry_run] == ["foo/p0"]


def test_only_dry_run_allow_means_no_allow_policy(tmp_path: Path) -> None:
    dry = {
        "meta": {"annotations": {"istio.io/dry-run": "true"}},
        **allow_rule(to(paths=["/x"])),
    }

    assert allowed(policies(tmp_path, dry), context(path="/y"))


def test_audit_marks_without_deciding(tmp_path: Path) -> None:
    audit = {"action": "AUDIT", "rules": [to(paths=["/a"])]}

    verdict = evaluate(policies(tmp_path, audit), context(path="/a"))

    assert [m.policy for m in verdict.audit] == ["foo/p0"]


def test_deny_names_policy_and_rule(tmp_path: Path) -> None:
    deny = {"action": "DENY", "rules": [to(paths=["/x"]), to(paths=["/admin"])]}

    with pytest.raises(PolicyDenied) as caught:
        evaluate(policies(tmp_path, deny), context(path="/admin"))

    assert (caught.value.policy, caught.value.rule) == ("foo/p0", 1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (source(ipBlocks=["10.0.0.300"]), "is not an IP address or CIDR"),
        (to(ports=["http"]), "is not a port number"),
        (to(paths=["/foo/{*}.txt"]), "is not a valid path template"),
        (to(paths=["/foo/{**}/{*}"]), "must be the last operator"),
        (when("request.headers", ["x"]), "must look like request.headers[name]"),
        (when("request.auth.claims[a]b", ["x"]), "must look like request.auth.claims"),
        (
            when("destination.labels[app]", ["x"]),
            "is not a condition authz-server supports",
        ),
        (when("experimental.envoy.filters.a[b]", ["x"]), "is not a condition"),
        (source(serviceAccounts=["a/b/c"]), "a service account is"),
    ],
)
def test_values_we_cannot_evaluate_reject_the_config(
    tmp_path: Path, spec: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    document = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "bad", "namespace": "foo"},
        "spec": {"action": "DENY", "rules": [spec]},
    }
    path.write_text(yaml.safe_dump(document))

    with pytest.raises(ConfigError) as caught:
        build(config.load([str(path)]), KeyRegistry(), Settings())

    assert message in str(caught.value)
    assert f"{path} document 0 field spec.rules[0]" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/store/{*}/cart", "/store/k=v/cart"),
        ("/store/{*}/cart", "/store/x*y/cart"),
        ("/files/{**}", "/files/a*b/k=v"),
    ],
)
def test_templates_match_equals_and_star_like_envoy(
    tmp_path: Path, template: str, path: str
) -> None:
    found = policies(tmp_path, allow_rule(to(paths=[template])))

    assert allowed(found, context(path=path))
