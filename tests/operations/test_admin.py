"""The admin listener: probes, Prometheus metrics and the key-set page."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from checks import Authz, bearer, request_authentication
from operations_support import mint, rule

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.settings import Settings

ADMIN = Settings(admin_listen="127.0.0.1:0")


def get(port: int | None, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}{path}", timeout=5
        ) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_probes_follow_config_and_keys(tmp_path: Path, idp: KeyServer) -> None:
    idp.set_status(500)
    with Authz(tmp_path, Settings(admin_listen="127.0.0.1:0")) as authz:
        port = authz.server.admin_port
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/readyz")[0] == 503, "no config yet"

        authz.load(request_authentication(rule(idp.url)))
        assert get(port, "/readyz")[0] == 503, "keys never loaded"

        idp.set_status(200)
        authz.server.registry.sources()[0].refresh()
        assert get(port, "/readyz") == (200, "ready\n")

        authz.server.stop(grace=0)
        assert authz.server.ready() is False


def test_metrics_count_decisions_fetches_and_cache(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    with Authz(tmp_path, ADMIN) as authz:
        authz.load(request_authentication(rule(idp.url)))
        token = bearer(mint(key_one, "k1"))
        for _ in range(3):
            assert authz.check(headers=token).allowed
        assert authz.check(headers=bearer("garbage")).status == 401

        status, text = get(authz.server.admin_port, "/metrics")

    assert status == 200
    assert 'authz_decisions_total{decision="allow",reason="allowed"} 3.0' in text
    assert 'authz_decisions_total{decision="deny",reason="jwt_malformed"} 1.0' in text
    assert "authz_check_duration_seconds_count 4.0" in text
    assert f'authz_jwks_fetches_total{{jwks="{idp.url}",result="ok"}} 1.0' in text
    assert f'authz_jwks_keys{{jwks="{idp.url}"}} 1.0' in text
    assert 'authz_token_cache_total{result="hit"} 2.0' in text
    assert 'authz_token_cache_total{result="miss"} 1.0' in text
    assert 'authz_config_reloads_total{result="success"} 1.0' in text
    assert "user-1" not in text and "garbage" not in text


def test_debug_keys_lists_public_identifiers_only(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    with Authz(tmp_path, ADMIN) as authz:
        authz.load(request_authentication(rule(idp.url)))

        status, text = get(authz.server.admin_port, "/debug/keys")

    page = json.loads(text)
    (entry,) = page["key_sources"]
    assert status == 200
    assert entry["source"] == f"jwksUri {idp.url}"
    assert entry["keys"] == [
        {"kid": "k1", "alg": "RS256", "kty": "RSA", "algorithms": ["RS256"]}
    ]
    assert entry["fetched_at"].endswith("Z") and entry["last_error"] is None
    assert tokens.public_jwk(key_one, "k1")["n"] not in text


def test_unknown_admin_path_is_404(tmp_path: Path) -> None:
    with Authz(tmp_path, ADMIN) as authz:
        assert get(authz.server.admin_port, "/nope")[0] == 404
