"""JWKS over HTTPS: certificates are verified, against a CA bundle when given."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from checks import Authz, bearer, request_authentication
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from operations_support import jwks, mint, rule

from authz_server import tokens
from authz_server.settings import Settings


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    ca: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        address = ipaddress.ip_address("127.0.0.1")
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(address)]), critical=False
        )
    return builder.sign(signer or key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("test ca", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key)
    files = {
        "ca": folder / "ca.pem",
        "cert": folder / "cert.pem",
        "key": folder / "key.pem",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def https_jwks(tls_files: dict[str, Path], key_one: tokens.PrivateKey) -> Iterator[str]:
    body = json.dumps(jwks((key_one, "k1"))).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_https_keys_load_with_the_ca_bundle(
    tmp_path: Path,
    https_jwks: str,
    tls_files: dict[str, Path],
    key_one: tokens.PrivateKey,
) -> None:
    with Authz(tmp_path, Settings(jwks_ca_file=str(tls_files["ca"]))) as authz:
        authz.load(request_authentication(rule(https_jwks)))

        assert authz.check(headers=bearer(mint(key_one, "k1"))).allowed


def test_untrusted_certificate_is_refused(
    tmp_path: Path, https_jwks: str, key_one: tokens.PrivateKey
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(https_jwks)))

        result = authz.check(headers=bearer(mint(key_one, "k1")))
        source = authz.server.registry.sources()[0]

    assert (result.status, result.reason) == (401, "jwks_unavailable")
    assert "CERTIFICATE_VERIFY_FAILED" in source.last_error
