"""The ``authz-server`` command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

COMMAND = [sys.executable, "-m", "authz_server"]
RA = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra}
spec:
  jwtRules:
  - issuer: https://idp.example.com
    jwks: '%s'
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    result = run("token", "keygen", "--out", str(tmp_path / "keys"), "--kid", "k1")
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys"


def test_keygen_writes_a_private_key_and_its_jwks(keys: Path) -> None:
    document = json.loads((keys / "jwks.json").read_text())

    assert [key["kid"] for key in document["keys"]] == ["k1"]
    assert "d" not in document["keys"][0]
    assert (keys / "private.pem").stat().st_mode & 0o077 == 0


def test_mint_signs_the_claims_asked_for(keys: Path) -> None:
    result = run(
        "token",
        "mint",
        "--key",
        str(keys / "private.pem"),
        "--kid",
        "k1",
        "--iss",
        "https://idp",
        "--sub",
        "alice",
        "--aud",
        "api",
        "--claim",
        "role=admin",
        "--claim",
        'groups=["a","b"]',
        "--claim",
        "n=3",
    )

    token = result.stdout.strip()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["kid"] == "k1" and header["alg"] == "RS256"
    assert claims["sub"] == "alice" and claims["aud"] == "api"
    assert claims["role"] == "admin" and claims["groups"] == ["a", "b"]
    assert claims["n"] == 3 and claims["exp"] > time.time()


def test_check_accepts_a_valid_config(tmp_path: Path, keys: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(RA % (keys / "jwks.json").read_text().replace("\n", ""))

    result = run("check", "--config", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 1 resources in 1 files")


def test_check_prints_every_error_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RA.replace("issuer:", "issuerr:") % "{}" + "---\nkind: Nope\n")

    result = run("check", "--config", str(path))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert (
        f"error: {path} document 0 field spec.jwtRules[0].issuerr: unknown field"
        in lines
    )
    assert any(
        line.startswith(f"error: {path} document 1 field kind") for line in lines
    )


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Nope\n")

    result = run("serve", "--config", str(path), "--grpc-listen", "127.0.0.1:0")

    assert result.returncode == 2
    assert f"error: {path} document 0 field kind" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_serve_reports_health_and_stops_cleanly_on_sigterm(
    tmp_path: Path, keys: Path
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(RA % (keys / "jwks.json").read_text().replace("\n", ""))
    port, admin = free_port(), free_port()
    env = {
        **os.environ,
        "AUTHZ_CONFIG": str(path),
        "AUTHZ_LOG_FORMAT": "json",
        "AUTHZ_ADMIN_LISTEN": f"127.0.0.1:{admin}",
    }
    with subprocess.Popen(
        [*COMMAND, "serve", "--grpc-listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not serving(port):
                assert process.poll() is None, "server exited early"
                assert time.monotonic() < deadline, "server did not become SERVING"
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz") as ready:
                assert ready.status == 200
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

    assert process.returncode == 0
    messages = [json.loads(line)["message"] for line in out.splitlines() if line]
    assert "config loaded" in messages and "serving" in messages


def test_envoy_binary_and_api_stubs_coexist() -> None:
    from envoy.service.auth.v3 import external_auth_pb2

    envoy = shutil.which("envoy", path=str(Path(sys.executable).parent)) or "envoy"
    version = subprocess.run(
        [envoy, "--version"], capture_output=True, text=True, timeout=30
    )

    assert external_auth_pb2.CheckRequest.DESCRIPTOR.full_name == (
        "envoy.service.auth.v3.CheckRequest"
    )
    assert version.returncode == 0 and "version:" in version.stdout


def test_check_reports_parse_and_compile_errors_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: p, annotations: {istio.io/dry-run: 'yes'}}\n"
        "spec:\n  rules:\n  - when: [{key: 'request.auth.claim[role]', values: [a]}]\n"
        "    to: [{operation: {pathz: [/x]}}]\n"
    )

    lines = run("check", "--config", str(path)).stderr.splitlines()

    assert any("is not a boolean" in line for line in lines), lines
    assert any("pathz: unknown field" in line for line in lines), lines
    assert any(
        "'request.auth.claim[role]' is not a condition" in line for line in lines
    )


def test_explain_with_a_missing_token_file_is_a_clean_error(
    tmp_path: Path, keys: Path
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(RA % (keys / "jwks.json").read_text().replace("\n", ""))
    result = run(
        "explain", "--config", str(path), "--token-file", str(tmp_path / "absent")
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "absent" in result.stderr


def test_serve_flags_and_environment_reach_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from authz_server.cli import _settings, build_parser

    monkeypatch.setenv("AUTHZ_MAX_TOKEN_BYTES", "4096")
    args = build_parser().parse_args(
        [
            "serve",
            "--admin-listen",
            "",
            "--http-listen",
            "127.0.0.1:9003",
            "--http-original",
            "nginx",
            "--jwks-miss-interval",
            "5",
            "--max-json-depth",
            "8",
            "--trusted-proxies",
            "2",
        ]
    )

    settings = _settings(args)

    assert settings.admin_listen == "" and settings.http_listen == "127.0.0.1:9003"
    assert settings.http_original == "nginx"
    assert settings.jwks_miss_interval_seconds == 5.0
    assert settings.trusted_proxies == 2
    assert settings.limits.max_json_depth == 8
    assert settings.limits.max_token_bytes == 4096
