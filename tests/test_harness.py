"""The test plumbing itself: echo upstream, key server, Envoy configs, the stack."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import jwt
import pytest
import yaml
from harness import (
    ENVOY_DIR,
    FRONT_PROXY,
    REPO_ROOT,
    TEST_KID,
    Stack,
    free_port,
    jwks_of,
    send_request,
)

from authz_server import tokens
from authz_server.demo.echo import EchoUpstream
from authz_server.demo.envoy_proc import (
    EnvoyError,
    EnvoyProcess,
    admin_port,
    listener_ports,
    load_config,
    render_config,
    validate,
)
from authz_server.demo.keyserver import KeyServer
from authz_server.demo.run import (
    AUDIENCE,
    ISSUER,
    KID,
    POLICY_PATH,
    DemoPorts,
    demo_tokens,
)

DEMO_JWKS_URI = "http://127.0.0.1:9090/jwks.json"

ALLOW_ALL = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: default}
spec:
  action: ALLOW
  rules: [{}]
"""

DENY_ALL = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec:
  action: DENY
  rules: [{}]
"""


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = send_request(port, "GET", path)
    return status, {name.lower(): value for name, value in headers}, body


# echo upstream


def test_echo_records_repeated_headers_in_order(echo: EchoUpstream) -> None:
    headers = [("X-Dup", "one"), ("x-dup", "two"), ("X-Other", "3")]
    status, _, body = send_request(echo.port, "PATCH", "//a/%2Fb?q=1", headers)

    assert status == 200
    record = echo.requests[-1]
    assert json.loads(body)["headers"] == record["headers"]
    assert record["method"] == "PATCH"
    assert record["path"] == "//a/%2Fb?q=1"
    assert record["headers"]["x-dup"] == ["one", "two"]
    assert record["headers"]["x-other"] == ["3"]


def test_echo_records_body_and_clear_forgets(echo: EchoUpstream) -> None:
    send_request(echo.port, "POST", "/form", body=b"a=1")
    assert echo.requests[-1]["body"] == "a=1"

    echo.clear()
    assert echo.requests == []


# key server


def test_key_server_serves_jwks_and_counts_hits(key_server: KeyServer) -> None:
    port = key_server.port

    status, headers, body = get(port, "/jwks.json")
    get(port, "/jwks.json")

    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["keys"][0]["kid"] == TEST_KID
    assert key_server.hits == 2
    key_server.reset_hits()
    assert key_server.hits == 0


def test_key_server_discovery_points_at_its_jwks(key_server: KeyServer) -> None:
    status, _, body = get(key_server.port, "/.well-known/openid-configuration")

    assert status == 200
    assert json.loads(body) == {
        "issuer": key_server.issuer_url,
        "jwks_uri": key_server.url,
    }
    assert urllib.parse.urlsplit(key_server.url).path == "/jwks.json"
    assert key_server.hits == 0


def test_key_server_status_headers_and_raw_bytes(key_server: KeyServer) -> None:
    key_server.set_jwks(b"not json")
    key_server.set_status(503)
    key_server.set_headers({"Cache-Control": "max-age=60"})

    status, headers, body = get(key_server.port, "/jwks.json")

    assert (status, body) == (503, b"not json")
    assert headers["cache-control"] == "max-age=60"
    assert key_server.hits == 1


def test_key_server_delays_jwks(key_server: KeyServer) -> None:
    key_server.set_delay(0.3)

    started = time.monotonic()
    status, _, _ = get(key_server.port, "/jwks.json")

    assert status == 200
    assert time.monotonic() - started >= 0.3


def test_key_server_unknown_path_is_404(key_server: KeyServer) -> None:
    assert get(key_server.port, "/nothing")[0] == 404


# Envoy configs


@pytest.mark.parametrize(
    "config", sorted(ENVOY_DIR.glob("*.yaml")), ids=lambda path: path.name
)
def test_envoy_config_passes_envoy_validate(config: Path) -> None:
    ok, output = validate(config, cwd=REPO_ROOT)
    assert ok, output


def test_render_config_replaces_ports_by_name(tmp_path: Path) -> None:
    ports = {"admin": 1001, "front_proxy": 1002, "authz_server": 1003, "echo": 1004}

    rendered = load_config(render_config(FRONT_PROXY, tmp_path / "out.yaml", ports))

    assert admin_port(rendered) == 1001
    assert listener_ports(rendered) == [1002]
    clusters = {c["name"]: c for c in rendered["static_resources"]["clusters"]}
    for name in ("authz_server", "echo"):
        endpoints = clusters[name]["load_assignment"]["endpoints"]
        address = endpoints[0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"]["port_value"] == ports[name]
    assert validate(tmp_path / "out.yaml")[0]


def test_render_config_rejects_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        render_config(FRONT_PROXY, tmp_path / "out.yaml", {"nope": 1})


def test_render_config_rejects_non_loopback_address(tmp_path: Path) -> None:
    config = load_config(FRONT_PROXY)
    config["admin"]["address"]["socket_address"]["address"] = "0.0.0.0"
    template = tmp_path / "public.yaml"
    template.write_text(yaml.safe_dump(config), encoding="utf-8")

    with pytest.raises(ValueError, match="not loopback"):
        render_config(template, tmp_path / "out.yaml", {"admin": 1})


def test_envoy_process_reports_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}\n"
        "static_resources: {clusters: [{name: x, type: NOPE}]}\n",
        encoding="utf-8",
    )

    with pytest.raises(EnvoyError, match="exited"):
        EnvoyProcess(config, log_path=tmp_path / "envoy.log").start()


def test_envoy_fails_closed_when_authz_server_is_down(
    tmp_path: Path, echo: EchoUpstream
) -> None:
    ports = {
        "admin": free_port(),
        "front_proxy": free_port(),
        "authz_server": free_port(),
        "echo": echo.port,
    }
    config = render_config(FRONT_PROXY, tmp_path / "front-proxy.yaml", ports)

    with EnvoyProcess(config, log_path=tmp_path / "envoy.log") as envoy:
        status, _, _ = send_request(envoy.listener_ports[0], "GET", "/")

    assert status == 403
    assert echo.requests == []


# the demo files


def test_demo_ports_match_the_demo_files() -> None:
    ports = DemoPorts()
    proxy = load_config(FRONT_PROXY)
    clusters = {c["name"]: c for c in proxy["static_resources"]["clusters"]}
    policy = next(yaml.safe_load_all(POLICY_PATH.read_text(encoding="utf-8")))

    def cluster_port(name: str) -> int:
        endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        return int(endpoint["endpoint"]["address"]["socket_address"]["port_value"])

    assert admin_port(proxy) == ports.envoy_admin
    assert listener_ports(proxy) == [ports.envoy_listener]
    assert cluster_port("authz_server") == ports.authz_grpc
    assert cluster_port("echo") == ports.echo
    jwks_uri = policy["spec"]["jwtRules"][0]["jwksUri"]
    assert urllib.parse.urlsplit(jwks_uri).port == ports.key_server


def test_demo_tokens_verify_against_the_demo_jwks(
    signing_key: tokens.PrivateKey,
) -> None:
    minted = demo_tokens(signing_key, int(time.time()))
    jwk = tokens.public_jwk(signing_key, KID)
    key = jwt.PyJWK(jwk).key

    admin = jwt.decode(
        minted["admin"], key, ["RS256"], audience=AUDIENCE, issuer=ISSUER
    )

    assert admin["role"] == "admin"
    assert jwt.get_unverified_header(minted["admin"])["kid"] == KID
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(minted["expired"], key, ["RS256"], audience=AUDIENCE)


# the stack: Envoy in front of the in-process server


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ("//admin", "//admin"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a/./b/../c", "/a/c"),
        ("/%61dmin?x=1", "/admin?x=1"),
    ],
)
def test_stack_forwards_paths_normalised_like_istio_base(
    envoy_stack: Stack, sent: str, received: str
) -> None:
    envoy_stack.use_config(ALLOW_ALL)

    response = envoy_stack.request("GET", sent)

    assert response.status == 200
    assert response.upstream is not None
    assert response.upstream["path"] == received


def test_stack_forwards_repeated_headers(envoy_stack: Stack) -> None:
    envoy_stack.use_config(ALLOW_ALL)

    response = envoy_stack.request("GET", "/", [("X-Dup", "1"), ("X-Dup", "2")])

    assert response.status == 200
    assert response.upstream_header("x-dup") == ["1", "2"]
    assert response.json()["headers"]["x-dup"] == ["1", "2"]


def test_stack_denied_request_never_reaches_upstream(envoy_stack: Stack) -> None:
    envoy_stack.use_config(DENY_ALL)

    response = envoy_stack.request("GET", "/")

    assert response.status == 403
    assert response.upstream is None


@pytest.mark.parametrize(
    ("token_name", "status"),
    [("admin", 200), ("guest", 403), (None, 403), ("expired", 401), ("junk", 401)],
)
def test_stack_demo_policy_answers_as_the_demo_prints(
    envoy_stack: Stack,
    key_server: KeyServer,
    signing_key: tokens.PrivateKey,
    token_name: str | None,
    status: int,
) -> None:
    key_server.set_jwks(jwks_of(signing_key, KID))
    policy = POLICY_PATH.read_text(encoding="utf-8")
    envoy_stack.use_config(policy.replace(DEMO_JWKS_URI, key_server.url))
    minted = {**demo_tokens(signing_key, int(time.time())), "junk": "not-a-token"}
    headers = {"Authorization": f"Bearer {minted[token_name]}"} if token_name else {}

    response = envoy_stack.request("GET", "/hello", headers)

    assert response.status == status
    if status == 200:
        assert response.upstream_header("x-jwt-role") == ["admin"]
        assert response.upstream_header("x-jwt-payload")
    else:
        assert response.upstream is None
