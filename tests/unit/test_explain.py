"""``authz-server explain``: the decision and every check behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from authz_server import config, snapshot, tokens
from authz_server.authn.jwks import KeyRegistry
from authz_server.explain import explain, render
from authz_server.request import Request
from authz_server.settings import Settings

ISSUER = "https://idp.example.com"
POLICY = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules:
  - issuer: https://idp.example.com
    jwks: '%s'
    outputPayloadToHeader: x-jwt-payload
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: role-members, namespace: default}
spec:
  rules:
  - when:
    - key: request.auth.claims[role]
      values: ["user", "admin"]
"""


@pytest.fixture(scope="module")
def key() -> tokens.PrivateKey:
    return tokens.generate_key("ES256")


@pytest.fixture
def config_path(tmp_path: Path, key: tokens.PrivateKey) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % json.dumps({"keys": [tokens.public_jwk(key, "k1")]}))
    return path


def report_for(config_path: Path, token: str | None) -> dict[str, object]:
    built = snapshot.build(config.load([str(config_path)]), KeyRegistry(), Settings())
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return explain(built, Request("GET", "shop", "/orders", headers=headers))


def test_allowed_request_names_rule_principal_and_headers(
    config_path: Path, key: tokens.PrivateKey
) -> None:
    token = tokens.mint(key, "k1", {"iss": ISSUER, "sub": "alice", "role": "admin"})

    report = report_for(config_path, token)

    assert (report["decision"], report["status"]) == ("allow", 200)
    assert report["principal"] == f"{ISSUER}/alice"
    assert report["policy"] == {
        "policy": "default/role-members",
        "rule": 0,
        "action": "ALLOW",
    }
    assert report["headers_set"] == ["x-jwt-payload"]
    steps = report["steps"]
    assert isinstance(steps, list)
    assert steps[0].startswith("token at header authorization: alg ES256, kid k1")
    assert "clock skew 60s" in steps[0]
    assert steps[1] == "default/jwt spec.jwtRules[0]: verified"
    assert steps[2] == (
        "ALLOW default/role-members rule 0 matches: "
        "spec.rules[0].when[0] request.auth.claims[role] yes"
    )


def test_denied_request_says_which_check_failed(
    config_path: Path, key: tokens.PrivateKey
) -> None:
    token = tokens.mint(key, "k1", {"iss": ISSUER, "sub": "bob", "role": "guest"})

    report = report_for(config_path, token)
    text = render(report)

    assert (report["decision"], report["reason"]) == ("deny", "rbac_access_denied")
    assert report["principal"] == f"{ISSUER}/bob"
    assert "decision: DENY 403 rbac_access_denied" in text
    assert "request.auth.claims[role] no" in text


def test_expired_token_is_explained(config_path: Path, key: tokens.PrivateKey) -> None:
    token = tokens.mint(key, "k1", {"iss": ISSUER, "sub": "c", "exp": 1000})

    report = report_for(config_path, token)

    assert (report["status"], report["message"]) == (401, "Jwt is expired")
    assert report["steps"] == [
        report["steps"][0],
        "default/jwt spec.jwtRules[0]: Jwt is expired",
    ]


def test_no_token_is_explained(config_path: Path) -> None:
    report = report_for(config_path, None)

    assert report["steps"] == [
        "no token found (1 jwt rules apply)",
        "ALLOW default/role-members rule 0 does not match: "
        "spec.rules[0].when[0] request.auth.claims[role] no",
    ]


def test_command_prints_json_and_exits_3_on_deny(
    config_path: Path, key: tokens.PrivateKey, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.jwt"
    token_file.write_text(tokens.mint(key, "k1", {"iss": ISSUER, "sub": "d"}) + "\n")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "authz_server",
            "explain",
            "--config",
            str(config_path),
            "--path",
            "/orders",
            "--token-file",
            str(token_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["reason"] == "rbac_access_denied"
