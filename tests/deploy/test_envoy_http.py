"""The HTTP ext_authz listener on its own: where it reads the original request, what
it answers, and how it refuses descriptions a client could have forged."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from harness import jwks_of, send_request

from authz_server import tokens
from authz_server.envoy_grpc import challenge
from authz_server.envoy_http import HttpAuthzListener, Original, to_request
from authz_server.server import Server

POLICY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public-get, namespace: default}
spec:
  action: ALLOW
  rules:
  - to: [{operation: {methods: ["GET", "HEAD"], paths: ["/public/*"]}}]
  - from: [{source: {ipBlocks: ["203.0.113.0/24"]}}]
    to: [{operation: {paths: ["/partners"]}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: inline, namespace: default}
spec:
  jwtRules:
  - issuer: https://idp.example
    jwks: 'JWKS'
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
"""

NGINX = [("X-Original-Method", "GET")]
Headers = list[tuple[str, str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("http-listener") / "policy.yaml"
    jwks = json.dumps(jwks_of(tokens.generate_key("ES256")))
    path.write_text(POLICY.replace("JWKS", jwks), encoding="utf-8")
    server = Server(grpc_listen="127.0.0.1:0")
    server.load([str(path)])
    yield server
    server.stop(grace=0)


def ask(
    server: Server,
    method: str,
    target: str,
    headers: Headers = (),  # type: ignore[assignment]
    original: Original = "auto",
    path_prefix: str = "",
) -> tuple[int, dict[str, str], bytes]:
    listener = HttpAuthzListener(
        lambda: server.snapshot,
        "127.0.0.1:0",
        original=original,
        path_prefix=path_prefix,
    )
    port = listener.start()
    try:
        status, reply, body = send_request(port, method, target, list(headers))
    finally:
        listener.stop()
    return status, {name.lower(): value for name, value in reply}, body


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("GET", "/public/a", [], 200),
        ("POST", "/public/a", [], 403),
        ("GET", "/admin", [], 403),
        ("GET", "/_authz", [*NGINX, ("X-Original-URI", "/public/a?q=1")], 200),
        ("GET", "/_authz", [*NGINX, ("X-Original-URI", "/admin")], 403),
        (
            "GET",
            "/_authz",
            [("X-Original-Method", "PUT"), ("X-Original-URI", "/public/a")],
            403,
        ),
        (
            "GET",
            "/",
            [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/public/a")],
            200,
        ),
    ],
    ids=[
        "envoy-allowed",
        "envoy-method-denied",
        "envoy-path-denied",
        "nginx-allowed",
        "nginx-path-denied",
        "nginx-method-denied",
        "traefik-allowed",
    ],
)
def test_listener_reads_the_original_request_where_each_proxy_puts_it(
    server: Server, method: str, target: str, headers: Headers, status: int
) -> None:
    assert ask(server, method, target, headers)[0] == status


@pytest.mark.parametrize(
    "headers",
    [
        [*NGINX, ("X-Original-URI", "/public/a"), ("X-Forwarded-Uri", "/public/a")],
        [("X-Original-URI", "/public/a")],
        [("X-Forwarded-Uri", "/public/a")],
        [*NGINX, ("X-Original-URI", "/public/a"), ("X-Original-URI", "/admin")],
    ],
    ids=["two-families", "nginx-without-method", "traefik-without-method", "repeated"],
)
def test_listener_refuses_a_description_a_client_could_have_added(
    server: Server, headers: Headers
) -> None:
    status, reply, body = ask(server, "GET", "/public/a", headers)

    assert status == 400
    assert reply["x-authz-reason"] == "bad_request"
    assert body.startswith(b"Bad ext_authz request")


def test_listener_pinned_to_envoy_ignores_forwarded_descriptions(
    server: Server,
) -> None:
    spoofed = [*NGINX, ("X-Original-URI", "/public/a")]

    assert ask(server, "GET", "/admin", spoofed, original="envoy")[0] == 403
    assert ask(server, "GET", "/admin", spoofed, original="auto")[0] == 200


def test_listener_pinned_to_nginx_ignores_traefik_headers(server: Server) -> None:
    headers = [*NGINX, ("X-Original-URI", "/admin"), ("X-Forwarded-Uri", "/public/a")]

    assert ask(server, "GET", "/_authz", headers, original="nginx")[0] == 403
    assert ask(server, "GET", "/_authz", [], original="nginx")[0] == 400


def test_listener_strips_envoys_path_prefix(server: Server) -> None:
    assert ask(server, "GET", "/check/public/a", path_prefix="/check")[0] == 200
    assert ask(server, "GET", "/public/a", path_prefix="/check")[0] == 400


def test_listener_takes_source_ip_from_the_last_forwarded_for_entry(
    server: Server,
) -> None:
    def status(forwarded: str | None) -> int:
        headers = [("X-Forwarded-For", forwarded)] if forwarded else []
        return ask(server, "GET", "/partners", headers)[0]

    assert status("198.51.100.1, 203.0.113.9") == 200
    assert status("203.0.113.9, 198.51.100.1") == 403
    # Without the header the source is unknown, never the proxy's own address.
    assert status(None) == 403


def test_listener_allow_sets_headers_and_names_those_to_remove(server: Server) -> None:
    status, reply, body = ask(
        server, "GET", "/public/a", [("Authorization", "Basic x"), ("x_jwt_sub", "1")]
    )

    assert (status, body) == (200, b"")
    removed = reply["x-envoy-auth-headers-to-remove"].split(",")
    assert {"x-jwt-sub", "x_jwt_sub"} <= set(removed)
    assert "server" not in reply and "date" not in reply


def test_listener_401_carries_the_grpc_challenge(server: Server) -> None:
    status, reply, body = ask(
        server,
        "GET",
        "/public/a?q=1",
        [("Host", "api.example"), ("Authorization", "Bearer not-a-token")],
    )

    assert status == 401
    assert body.startswith(b"Jwt is not in the form of Header.Payload.Signature")
    assert reply["www-authenticate"] == challenge(
        to_request("GET", "/public/a", [("Host", "api.example")])[0]
    )
    assert reply["x-authz-reason"] == "jwt_malformed"


def test_listener_maps_other_statuses_to_403_for_nginx(server: Server) -> None:
    bad_path = [*NGINX, ("X-Original-URI", "/public/%00")]

    nginx_status, reply, _ = ask(server, "GET", "/_authz", bad_path)
    envoy_status, _, _ = ask(server, "GET", "/public/%00")

    assert (nginx_status, envoy_status) == (403, 400)
    assert reply["x-authz-reason"] == "path_not_normalizable"


def test_listener_answers_head_without_a_body(server: Server) -> None:
    status, reply, body = ask(server, "HEAD", "/admin")

    assert (status, body, reply["content-length"]) == (403, b"", "0")


def test_listener_fails_closed_before_the_first_config() -> None:
    listener = HttpAuthzListener(lambda: None, "127.0.0.1:0")
    port = listener.start()
    try:
        status, reply, _ = send_request(port, "GET", "/public/a")
    finally:
        listener.stop()

    assert status == 403
    assert dict((k.lower(), v) for k, v in reply)["x-authz-reason"] == "not_ready"


def test_listener_keeps_a_connection_alive_across_checks(server: Server) -> None:
    listener = HttpAuthzListener(lambda: server.snapshot, "127.0.0.1:0")
    port = listener.start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        statuses = []
        for path in ("/public/a", "/admin", "/public/b"):
            connection.request("GET", path, body=b"ignored")
            reply = connection.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        connection.close()
        listener.stop()

    assert statuses == [200, 403, 200]


def test_listener_rejects_a_bad_listen_address() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        HttpAuthzListener(lambda: None, "localhost").start()
    with pytest.raises(ValueError, match="original"):
        HttpAuthzListener(lambda: None, "127.0.0.1:0", original="apache")  # type: ignore[arg-type]
