"""The server's lifecycle: listeners, health, config generations, shutdown.

:class:`Server` owns the gRPC listener (ext_authz + standard health service), the
optional HTTP ext_authz listener, the admin listener, the key registry and the current
:class:`~authz_server.snapshot.Snapshot`. Loading a config builds and validates a
whole new snapshot first, fetches keys for URLs it has not seen, and only then swaps
it in; a bad config leaves the current one serving. Checks in flight keep the
snapshot they started with.

Ready (gRPC health SERVING, ``/readyz`` 200) means: a config is loaded, every
remote key set it names has loaded once (or the start-up deadline has passed, after
which tokens for a missing key set are denied), and the server is not shutting down.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from typing import cast

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz_server import observe
from authz_server.admin import AdminListener
from authz_server.authn.authenticate import CacheStats
from authz_server.authn.jwks import Fetcher, InlineKeys, KeyRegistry, RemoteKeys
from authz_server.authn.keys import KeySet
from authz_server.decision import Decision
from authz_server.envoy_grpc import AuthorizationServicer
from authz_server.envoy_http import HttpAuthzListener, Original
from authz_server.errors import ConfigError
from authz_server.metrics import Metrics
from authz_server.request import Request
from authz_server.settings import Settings
from authz_server.snapshot import Snapshot, load
from authz_server.watch import ConfigWatcher

logger = logging.getLogger(__name__)

AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"
WORKERS = 16
HEALTH_TICK_SECONDS = 0.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Server:
    """authz-server: load config, serve Check, report health and metrics."""

    def __init__(
        self, grpc_listen: str | None = None, settings: Settings | None = None
    ):
        self.settings = settings or Settings()
        self.grpc_listen = grpc_listen or self.settings.grpc_listen
        limits = self.settings.limits
        self.registry = KeyRegistry(
            Fetcher(self.settings.jwks_ca_file, limits.max_jwks_bytes),
            max_keys=limits.max_jwks_keys,
            refresh_seconds=self.settings.jwks_refresh_seconds,
            miss_interval=self.settings.jwks_miss_interval_seconds,
            max_stale_seconds=self.settings.jwks_max_stale_seconds,
        )
        self.cache_stats = CacheStats()
        self.metrics = Metrics(self.registry.sources, self.cache_stats)
        self.health = health.HealthServicer()
        self._snapshot: Snapshot | None = None
        self._paths: list[str] = []
        self._load_lock = threading.Lock()
        self._started_at = time.monotonic()
        self._stopping = threading.Event()
        self._grpc: grpc.Server | None = None
        self._admin: AdminListener | None = None
        self._http: HttpAuthzListener | None = None
        self.http_port: int | None = None
        self._watcher: ConfigWatcher | None = None
        self.admin_port: int | None = None
        self._publish_health()

    @property
    def snapshot(self) -> Snapshot | None:
        """The config generation new checks use."""
        return self._snapshot

    def load(self, paths: list[str]) -> Snapshot:
        """Load ``paths`` as the new config; raise ConfigError and keep the old one."""
        with self._load_lock:
            try:
                new = load(paths, self.registry, self.settings, self.cache_stats)
            except ConfigError as err:
                self.metrics.reloaded(False)
                kept = "the previous config keeps serving" if self._snapshot else ""
                logger.error(
                    "config rejected" + (f"; {kept}" if kept else ""),
                    extra={"problems": [str(p) for p in err.problems]},
                )
                raise
            self.registry.fetch_missing()
            self.registry.retain(
                {s for s in new.key_sources if isinstance(s, RemoteKeys)}
            )
            self._snapshot = new
            self._paths = list(paths)
        self.metrics.reloaded(True, new.generation)
        logger.info(
            "config loaded",
            extra={
                "generation": new.generation,
                "files": len(new.config.files),
                "rules": len(new.providers),
                "policies": len(new.policies),
            },
        )
        self._publish_health()
        return new

    def reload(self) -> bool:
        """Load the same paths again (SIGHUP, file change); False if rejected."""
        try:
            self.load(self._paths)
        except ConfigError:
            return False
        return True

    def ready(self) -> bool:
        """Whether checks can be answered as configured (see the module docstring)."""
        current = self._snapshot
        if current is None or self._stopping.is_set():
            return False
        deadline_passed = (
            time.monotonic() - self._started_at > self.settings.startup_deadline_seconds
        )
        remote = [s for s in current.key_sources if isinstance(s, RemoteKeys)]
        return deadline_passed or all(s.fetched_at is not None for s in remote)

    def start(self, *, watch: bool = False) -> int:
        """Bind the listeners and start serving; return the bound gRPC port."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            AuthorizationServicer(lambda: self._snapshot, self._decided), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        port = server.add_insecure_port(self.grpc_listen)
        if port == 0:
            raise OSError(f"cannot listen on {self.grpc_listen}")
        server.start()
        self._grpc = server

        if self.settings.admin_listen:
            self._admin = AdminListener(
                self.settings.admin_listen,
                ready=self.ready,
                metrics=self.metrics,
                key_sources=self.registry.sources,
                inline_keys=self._inline_keys,
            )
            self.admin_port = self._admin.start()
        if self.settings.http_listen:
            self._http = HttpAuthzListener(
                lambda: self._snapshot,
                self.settings.http_listen,
                original=cast(Original, self.settings.http_original),
                on_decision=self._decided,
            )
            self.http_port = self._http.start()
        self.registry.start()
        threading.Thread(target=self._health_loop, name="health", daemon=True).start()
        if watch and self._paths:
            self._watcher = ConfigWatcher(
                self._paths, self.reload, self.settings.watch_interval_seconds
            )
            self._watcher.start()
        logger.info("serving", extra={"grpc_listen": self.grpc_listen, "port": port})
        return port

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, let in-flight checks finish, then stop."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        if self._watcher is not None:
            self._watcher.stop()
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(
                self.settings.grace_seconds if grace is None else grace
            ).wait()
            self._grpc = None
        if self._admin is not None:
            self._admin.stop()
        self.registry.stop()

    def _decided(self, request: Request, decision: Decision, seconds: float) -> None:
        self.metrics.decided(decision, seconds)
        observe.log_decision(request, decision, seconds)

    def _inline_keys(self) -> list[tuple[str, KeySet]]:
        current = self._snapshot
        if current is None:
            return []
        return [
            (provider.name, provider.keys.key_set)
            for _, provider in current.providers
            if isinstance(provider.keys, InlineKeys)
        ]

    def _health_loop(self) -> None:
        while not self._stopping.wait(HEALTH_TICK_SECONDS):
            self._publish_health()

    def _publish_health(self) -> None:
        if self._stopping.is_set():
            return
        status = SERVING if self.ready() else NOT_SERVING
        for service in ("", AUTHZ_SERVICE):
            self.health.set(service, status)
