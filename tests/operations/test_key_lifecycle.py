"""Key rotation and JWKS failures against a real JWKS server on loopback."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

from checks import Authz, bearer, request_authentication
from operations_support import eventually, jwks, mint, rule

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.settings import Settings


def test_new_kid_is_accepted_after_one_refetch(
    tmp_path: Path,
    idp: KeyServer,
    key_one: tokens.PrivateKey,
    key_two: tokens.PrivateKey,
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url, outputPayloadToHeader="x-p")))
        assert authz.check(headers=bearer(mint(key_one, "k1"))).allowed
        idp.reset_hits()

        idp.set_jwks(jwks((key_one, "k1"), (key_two, "k2")))
        rotated = authz.check(headers=bearer(mint(key_two, "k2")))

        assert rotated.allowed and "x-p" in rotated.headers_set
        assert idp.hits == 1


def test_removed_kid_is_rejected_once_the_cache_refreshes(
    tmp_path: Path,
    idp: KeyServer,
    key_one: tokens.PrivateKey,
    key_two: tokens.PrivateKey,
) -> None:
    settings = Settings(jwks_refresh_seconds=0.5, jwks_miss_interval_seconds=60)
    with Authz(tmp_path, settings) as authz:
        authz.load(request_authentication(rule(idp.url)))
        old = mint(key_one, "k1")
        assert authz.check(headers=bearer(old)).allowed

        idp.set_jwks(jwks((key_two, "k2")))
        eventually(
            lambda: not authz.check(headers=bearer(old)).allowed,
            why="old key still accepted",
        )

        result = authz.check(headers=bearer(old))
        assert (result.status, result.reason) == (401, "jwks_kid_alg_mismatch")
        assert authz.check(headers=bearer(mint(key_two, "k2"))).allowed


def test_flood_of_invented_kids_costs_one_fetch(
    tmp_path: Path, idp: KeyServer, key_two: tokens.PrivateKey
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)))
        idp.reset_hits()
        forged = [bearer(mint(key_two, f"zz-{n}")) for n in range(50)]

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda h: authz.check(headers=h), forged))

        assert all(r.status == 401 for r in results)
        assert {r.reason for r in results} == {"jwks_kid_alg_mismatch"}
        assert idp.hits == 1


def test_failed_refresh_keeps_last_good_keys_then_denies_when_stale(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    settings = Settings(jwks_refresh_seconds=0.2, jwks_max_stale_seconds=2.0)
    with Authz(tmp_path, settings) as authz:
        authz.load(request_authentication(rule(idp.url)))
        token = bearer(mint(key_one, "k1"))
        idp.set_status(500)
        time.sleep(1.2)

        assert authz.check(headers=token).allowed
        source = authz.server.registry.sources()[0]
        assert source.fetch_results["error"] >= 1
        assert source.last_error

        time.sleep(2.0)
        stale = authz.check(headers=token)
        assert (stale.status, stale.reason) == (401, "jwks_unavailable")

        idp.set_status(200)
        eventually(lambda: authz.check(headers=token).allowed, why="did not recover")


def test_unreachable_at_start_up_denies_tokens_and_recovers(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    idp.set_status(503)
    settings = Settings(jwks_miss_interval_seconds=0.5)
    with Authz(tmp_path, settings) as authz:
        authz.load(request_authentication(rule(idp.url)))
        token = bearer(mint(key_one, "k1"))

        down = authz.check(headers=token)
        assert (down.status, down.reason, down.body) == (
            401,
            "jwks_unavailable",
            "Jwks remote fetch is failed",
        )
        assert authz.check().allowed, "no token, no policy: still allowed"

        idp.set_status(200)
        time.sleep(0.6)
        assert authz.check(headers=token).allowed


def test_hanging_jwks_server_never_blocks_a_check_past_the_timeout(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    idp.set_delay(5)
    settings = Settings(jwks_miss_interval_seconds=0)
    with Authz(tmp_path, settings) as authz:
        started = time.monotonic()
        authz.load(request_authentication(rule(idp.url, timeout="300ms")))
        assert time.monotonic() - started < 2

        started = time.monotonic()
        result = authz.check(headers=bearer(mint(key_one, "k1")))

        assert result.status == 401
        assert time.monotonic() - started < 1.5


def test_garbage_and_oversized_key_sets_are_rejected_and_counted(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    for body in (b"<html>oops</html>", b'{"keys": "no"}', b" " * (600 * 1024)):
        idp.set_jwks(body)
        with Authz(tmp_path) as authz:
            authz.load(request_authentication(rule(idp.url)))

            result = authz.check(headers=bearer(mint(key_one, "k1")))

            assert (result.status, result.reason) == (401, "jwks_unavailable")
            source = authz.server.registry.sources()[0]
            assert source.fetch_results["ok"] == 0
            assert source.fetch_results["error"] >= 1


def test_unusable_keys_are_skipped_and_counted(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    document = jwks((key_one, "k1"))
    document["keys"].append({"kty": "OKP", "crv": "Ed448", "kid": "ed2", "x": "AA"})
    idp.set_jwks(document)
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)))

        assert authz.check(headers=bearer(mint(key_one, "k1"))).allowed
        current = authz.server.registry.sources()[0].current
        assert current is not None and current.skipped == 1


def test_cache_control_max_age_sets_the_refresh_time(
    tmp_path: Path, idp: KeyServer
) -> None:
    idp.set_headers({"Cache-Control": "public, max-age=120"})
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)))

        source = authz.server.registry.sources()[0]
        assert source.fetched_at is not None
        assert 119 <= source.next_refresh - source.fetched_at <= 121


def test_openid_discovery_finds_the_keys(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication({"issuer": idp.issuer_url}))
        token = tokens.mint(key_one, "k1", {"iss": idp.issuer_url, "sub": "a"})

        assert authz.check(headers=bearer(token)).allowed


def test_unchanged_key_urls_are_not_refetched_on_reload(
    tmp_path: Path, idp: KeyServer
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)))
        idp.reset_hits()

        authz.load(request_authentication(rule(idp.url, outputPayloadToHeader="x-p")))

        assert idp.hits == 0


def test_file_jwks_is_read_and_reread_when_it_changes(
    tmp_path: Path, key_one: tokens.PrivateKey, key_two: tokens.PrivateKey
) -> None:
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(json.dumps(jwks((key_one, "k1"))))
    with Authz(tmp_path, Settings(jwks_miss_interval_seconds=3600)) as authz:
        authz.load(request_authentication(rule(f"file://{keys_file}")))
        assert authz.check(headers=bearer(mint(key_one, "k1"))).allowed
        rotated = bearer(mint(key_two, "k2"))
        assert authz.check(headers=rotated).status == 401

        keys_file.write_text(json.dumps(jwks((key_two, "k2"))))
        eventually(
            lambda: authz.check(headers=rotated).allowed,
            why="file change not picked up",
        )


def test_stop_lets_checks_in_flight_finish(
    tmp_path: Path, idp: KeyServer, key_two: tokens.PrivateKey
) -> None:
    idp.set_delay(0.2)
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)))
        slow = bearer(mint(key_two, "unknown-kid"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(authz.check, headers=slow)
            time.sleep(0.05)
            started = time.monotonic()
            authz.server.stop(grace=2.0)

            result = pending.result(timeout=5)

        assert result.status == 401, "answered, not cut off"
        assert time.monotonic() - started < 2.0
        assert authz.server.ready() is False
