"""Memory of a real authz-server: with many cached tokens, and over a long run.

* Cache: a fresh ``authz-server serve`` (HS256 policy, see ``material``) gets one
  gRPC Check per distinct token, sent directly (Envoy adds nothing to
  authz-server's memory); RSS is read before and after. Every token is verified
  and stays in the verified-token cache (300 s, 100,000 entries).
* Soak: shape C under a fixed rate for a number of seconds, with the RSS of
  authz-server and Envoy sampled every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from bench import procs
from bench.inproc import check_request
from bench.material import Material
from bench.stack import Pinning, authz_server

IN_FLIGHT = 64
MB = 1024 * 1024


def cached_tokens(material: Material, count: int, pinning: Pinning) -> dict[str, Any]:
    """RSS of authz-server before and after ``count`` distinct valid tokens."""
    length = len(material.token)
    with authz_server(
        material, material.hs_policy_path, "WARNING", pinning.authz, "cache"
    ) as (pid, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            _send(stub, [check_request(material.token)])  # warm: imports, threads
            before = procs.rss_bytes(pid)
            started = time.perf_counter()
            allowed = _send(stub, _requests(material, count, length))
            elapsed = time.perf_counter() - started
            time.sleep(0.5)
            after = procs.rss_bytes(pid)
    return {
        "tokens": count,
        "token_chars": length,
        "allowed": allowed,
        "rss_before_mb": before / MB,
        "rss_after_mb": after / MB,
        "bytes_per_token": (after - before) / count if count else 0.0,
        "rss_at_100k_mb": (before + (after - before) * 100_000 / count) / MB,
        "checks_per_second": count / elapsed if elapsed else 0.0,
    }


def _requests(material: Material, count: int, length: int) -> Any:
    for number, token in enumerate(material.hs_tokens(count, length)):
        yield check_request(token, number)


def _send(stub: Any, requests: Any) -> int:
    """Send Checks with up to IN_FLIGHT outstanding; return how many were allowed."""
    pending: deque[Any] = deque()
    allowed = 0
    for request in requests:
        pending.append(stub.Check.future(request, timeout=30))
        if len(pending) >= IN_FLIGHT:
            allowed += _allowed(pending.popleft().result())
    while pending:
        allowed += _allowed(pending.popleft().result())
    return allowed


def _allowed(response: external_auth_pb2.CheckResponse) -> int:
    return 0 if response.HasField("denied_response") else 1


class RssSampler:
    """Samples the RSS of some pids every ``interval`` seconds in a thread."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self.samples: dict[str, list[tuple[float, int]]] = {n: [] for n in pids}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._started = 0.0

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        self._sample()
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        at = time.monotonic() - self._started
        for name, pid in self._pids.items():
            try:
                self.samples[name].append((at, procs.rss_bytes(pid)))
            except OSError:
                pass

    def summary(self) -> dict[str, Any]:
        """Start, end and maximum RSS (MB) per process, and every sample."""
        return {
            name: {
                "start_mb": samples[0][1] / MB,
                "end_mb": samples[-1][1] / MB,
                "max_mb": max(rss for _, rss in samples) / MB,
                "samples": [(round(at, 1), round(rss / MB, 2)) for at, rss in samples],
            }
            for name, samples in self.samples.items()
            if samples
        }
