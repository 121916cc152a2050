"""In-process microbenchmark of the gRPC Check handler, beside raw verification.

Calls :class:`authz_server.envoy_grpc.AuthorizationServicer` ``.Check`` directly
(CheckRequest in, CheckResponse out, with the production ``on_decision``: metrics
and the decision log) on one thread, so the figures are decisions/s on one core.
"Uncached" cases send a distinct token per call, so each one is parsed and its
signature verified; "raw verify" is one ``cryptography`` signature check with the
same key and a signing input of the same size: the floor under an uncached check.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import pstats
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from envoy.service.auth.v3 import external_auth_pb2

from authz_server import config, observe, tokens
from authz_server.authn.authenticate import CacheStats
from authz_server.authn.jwks import KeyRegistry
from authz_server.authn.token import parse
from authz_server.envoy_grpc import AuthorizationServicer
from authz_server.metrics import Metrics
from authz_server.settings import Settings
from authz_server.snapshot import build
from bench.material import ISSUER, Material

CHECK_BATCH = 64
NO_CONTEXT: Any = None  # Check never touches its gRPC context


@dataclass(frozen=True)
class Case:
    """One kind of request: its tokens and the status it must get.

    ``repeat``: the first token is sent again and again; otherwise each token is
    sent once (after one unmeasured call with the first).
    """

    name: str
    tokens: Sequence[str | None]
    status: int
    repeat: bool


def check_request(token: str | None, number: int = 0) -> Any:
    """A CheckRequest shaped like the ones Envoy sends for ``GET /``."""
    request = external_auth_pb2.CheckRequest()
    attributes = request.attributes
    attributes.source.address.socket_address.address = "127.0.0.1"
    attributes.source.address.socket_address.port_value = 40000 + number % 20000
    attributes.destination.address.socket_address.address = "127.0.0.1"
    attributes.destination.address.socket_address.port_value = 8080
    http = attributes.request.http
    http.id = f"{number:016x}"
    http.method = "GET"
    http.host = "127.0.0.1:8080"
    http.path = "/"
    http.scheme = "http"
    http.protocol = "HTTP/1.1"
    headers = {
        ":authority": "127.0.0.1:8080",
        ":method": "GET",
        ":path": "/",
        ":scheme": "http",
        "user-agent": "bench",
        "x-forwarded-proto": "http",
        "x-request-id": http.id,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    http.headers.update(headers)
    return request


def servicer(material: Material) -> AuthorizationServicer:
    """The Check handler over the bench policy, wired as ``Server`` wires it."""
    registry = KeyRegistry()
    stats = CacheStats()
    snapshot = build(config.load([str(material.policy_path)]), registry, Settings())
    metrics = Metrics(registry.sources, stats)

    def on_decision(request: Any, decision: Any, seconds: float) -> None:
        metrics.decided(decision, seconds)
        observe.log_decision(request, decision, seconds)

    return AuthorizationServicer(lambda: snapshot, on_decision)


def cases(material: Material, uncached: int) -> list[Case]:
    """Allowed (cached, uncached per algorithm) and denied requests."""
    now = int(time.time())
    forged = _forged(material)
    found = [Case("allow cached RS256", [material.token], 200, True)]
    for algorithm in ("RS256", "ES256", "EdDSA"):
        minted = [material.mint(algorithm, jti=str(n)) for n in range(uncached)]
        found.append(Case(f"allow uncached {algorithm}", minted, 200, False))
    found += [
        Case("deny no token (403)", [None], 403, True),
        Case("deny role, cached (403)", [material.mint(role="guest")], 403, True),
        Case("deny expired (401)", [material.mint(exp=now - 3600)], 401, True),
        Case("deny unknown issuer (401)", [material.mint(iss="https://x")], 401, True),
        Case("deny forged RS256 (401)", [forged], 401, True),
    ]
    return found


def _forged(material: Material) -> str:
    """The bench token's header and payload with another RS256 key's signature."""
    other = tokens.generate_key("RS256")
    claims = parse(material.token).payload
    signed = tokens.mint(other, material.kid("RS256"), claims, expires_in=None)
    return signed


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the calling thread on ``cpu`` (when given), then restore."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def time_calls(call: Callable[[int], object], seconds: float, limit: int) -> float:
    """Seconds per call of ``call(n)``: for ``seconds`` or ``limit`` calls."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while count < limit:
        for _ in range(min(CHECK_BATCH, limit - count)):
            call(count)
            count += 1
        if time.perf_counter() >= deadline:
            break
    return (time.perf_counter() - started) / count


def status_of(response: Any) -> int:
    if response.HasField("denied_response"):
        return int(response.denied_response.status.code)
    return 200


def run_case(handler: AuthorizationServicer, case: Case, seconds: float) -> float:
    """Seconds per Check for ``case``; raise if the status is not the expected."""
    requests = [check_request(token, n) for n, token in enumerate(case.tokens)]
    first = handler.Check(requests[0], NO_CONTEXT)
    if status_of(first) != case.status:
        raise AssertionError(f"{case.name}: got {status_of(first)}")
    size = len(requests)
    offset = 0 if case.repeat else 1
    limit = 10**9 if case.repeat else size - offset
    return time_calls(
        lambda n: handler.Check(requests[(n + offset) % size], NO_CONTEXT),
        seconds,
        limit,
    )


def raw_verifiers(material: Material) -> dict[str, Callable[[int], object]]:
    """One ``cryptography`` verify per algorithm, same keys and token sizes."""
    verifiers: dict[str, Callable[[int], object]] = {}
    for algorithm in ("RS256", "ES256", "EdDSA"):
        jwt = parse(material.mint(algorithm))
        public = material.keys[algorithm].public_key()
        verifiers[algorithm] = _verifier(public, jwt.signing_input, jwt.signature)
    return verifiers


def _verifier(public: Any, data: bytes, signature: bytes) -> Callable[[int], object]:
    if isinstance(public, rsa.RSAPublicKey):
        pkcs = padding.PKCS1v15()
        return lambda _: public.verify(signature, data, pkcs, hashes.SHA256())
    if isinstance(public, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = encode_dss_signature(
            int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
        )
        scheme = ec.ECDSA(hashes.SHA256())
        return lambda _: public.verify(der, data, scheme)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    return lambda _: public.verify(signature, data)


@contextlib.contextmanager
def decision_log_at_info() -> Iterator[None]:
    """Send the INFO decision log, JSON-formatted, to /dev/null meanwhile."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(observe.JsonFormatter())
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)


def run(
    material: Material, seconds: float, uncached: int, cpu: int | None
) -> dict[str, Any]:
    """Every case and raw verify: microseconds per call and calls per second."""
    handler = servicer(material)
    results: dict[str, Any] = {"cpu": cpu, "seconds_per_case": seconds, "cases": {}}
    with pinned(cpu):
        logging.getLogger().setLevel(logging.WARNING)
        for case in cases(material, uncached):
            results["cases"][case.name] = _figures(run_case(handler, case, seconds))
        with decision_log_at_info():
            cached = cases(material, 0)[0]
            per = run_case(handler, cached, seconds)
        results["cases"]["allow cached RS256, INFO decision log"] = _figures(per)
        results["raw_verify"] = {
            name: _figures(time_calls(verify, seconds, max(uncached, 1000)))
            for name, verify in raw_verifiers(material).items()
        }
    for algorithm, raw in results["raw_verify"].items():
        check = results["cases"][f"allow uncached {algorithm}"]
        check["ratio_to_raw_verify"] = check["us"] / raw["us"]
    results["issuer"] = ISSUER
    return results


def _figures(seconds_per_call: float) -> dict[str, float]:
    return {"us": seconds_per_call * 1e6, "per_second": 1 / seconds_per_call}


def profile(material: Material, seconds: float, uncached: int) -> str:
    """cProfile of cached and uncached RS256 allows: top functions, both orders."""
    handler = servicer(material)
    chosen = [c for c in cases(material, uncached) if "RS256" in c.name][:2]
    report = io.StringIO()
    for case in chosen:
        profiler = cProfile.Profile()
        profiler.enable()
        run_case(handler, case, seconds)
        profiler.disable()
        report.write(f"== {case.name}\n")
        stats = pstats.Stats(profiler, stream=report)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    return report.getvalue()
