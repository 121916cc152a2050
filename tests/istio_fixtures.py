"""Istio's own fixtures, loaded as written except that remote JWKS URLs point at a
key server on loopback serving the matching JWKS file."""

from __future__ import annotations

from pathlib import Path

from authz_server import config, snapshot
from authz_server.authn.jwks import KeyRegistry
from authz_server.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
POLICIES = FIXTURES / "istio-policies"
SAMPLES = FIXTURES / "istio-samples"
COMMON = SAMPLES / "tests-common-jwt"
CLUSTER_JWKS = "http://jwt-server.istio-system.svc.cluster.local:8000/jwks"
SAMPLES_JWKS = (
    "https://raw.githubusercontent.com/istio/istio/master/"
    "security/tools/jwt/samples/jwks.json"
)


# itest-requestauthn-global-jwt.yaml at the ingress gateway (SOURCES.md):
# (host, path, token file or None, status).
GLOBAL_JWT = [
    ("example.httpbin.com", "/healthz", None, 200),
    ("example.httpbin.com", "/", None, 403),
    ("example.httpbin.com", "/", "TokenIssuer1", 200),
    ("example.httpbin.com", "/", "TokenIssuer2", 403),
    ("example.httpbin.com", "/", "TokenExpired", 401),
    ("any-request-principal-ok.httpbin.com", "/", "TokenIssuer1", 200),
    ("any-request-principal-ok.httpbin.com", "/", "TokenIssuer2", 200),
    ("any-request-principal-ok.httpbin.com", "/", None, 403),
    ("other-host.httpbin.com", "/", "TokenIssuer1", 403),
]


def token(name: str) -> str:
    """A sample token by file name (``TokenIssuer1``, ``demo``, ...)."""
    folder = SAMPLES if name in ("demo", "groups-scope") else COMMON
    return (folder / f"{name}.jwt").read_text().strip()


def localised(name: str, out: Path, common_url: str, samples_url: str) -> Path:
    """Write fixture ``name`` with its JWKS URLs replaced by loopback ones."""
    text = (POLICIES / name).read_text()
    text = text.replace(CLUSTER_JWKS, common_url).replace(SAMPLES_JWKS, samples_url)
    path = out / name
    path.write_text(text)
    return path


def load(paths: list[Path]) -> snapshot.Snapshot:
    """Build a snapshot and fetch its keys, as the server does at start-up."""
    registry = KeyRegistry()
    built = snapshot.build(config.load([str(p) for p in paths]), registry, Settings())
    registry.fetch_missing()
    return built
