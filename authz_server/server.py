"""The server's lifecycle: listeners, health, config generations, shutdown.

:class:`Server` owns the gRPC listener (ext_authz + standard health service), the
key registry and the current :class:`~authz_server.Snapshot`. Loading a
config builds and validates a whole new snapshot first, fetches keys for URLs it has
not seen, and only then swaps it in; a bad config leaves the current one serving.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz_server import config
from authz_server.authn.jwks import KeyRegistry, RemoteKeys
from authz_server.envoy_grpc import AuthorizationServicer
from authz_server.settings import Settings
from authz_server.snapshot import Snapshot, build

logger = logging.getLogger(__name__)

AUTHZ_SERVICE = "envoy.service.auth.v3.Authorization"
WORKERS = 16


class Server:
    """authz-server: load config, serve Check, report health."""

    def __init__(
        self, grpc_listen: str | None = None, settings: Settings | None = None
    ):
        self.settings = settings or Settings()
        self.grpc_listen = grpc_listen or self.settings.grpc_listen
        self.registry = KeyRegistry(
            refresh_seconds=self.settings.jwks_refresh_seconds,
            miss_interval=self.settings.jwks_miss_interval_seconds,
        )
        self.health = health.HealthServicer()
        self._snapshot: Snapshot | None = None
        self._load_lock = threading.Lock()
        self._grpc: grpc.Server | None = None
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    @property
    def snapshot(self) -> Snapshot | None:
        """The config generation new checks use."""
        return self._snapshot

    def load(self, paths: list[str]) -> Snapshot:
        """Load ``paths`` as the new config; raise ConfigError and keep the old one."""
        with self._load_lock:
            new = build(config.load(paths), self.registry, self.settings)
            self.registry.fetch_missing()
            self.registry.retain(
                {s for s in new.key_sources if isinstance(s, RemoteKeys)}
            )
            self._snapshot = new
        logger.info(
            "config loaded",
            extra={
                "generation": new.generation,
                "files": len(new.config.files),
                "rules": len(new.providers),
                "policies": len(new.policies),
            },
        )
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        return new

    def start(self) -> int:
        """Bind the gRPC listener and start serving; return the bound port."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            AuthorizationServicer(lambda: self._snapshot), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        port = server.add_insecure_port(self.grpc_listen)
        if port == 0:
            raise OSError(f"cannot listen on {self.grpc_listen}")
        server.start()
        self.registry.start()
        self._grpc = server
        logger.info("serving", extra={"grpc_listen": self.grpc_listen, "port": port})
        return port

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, let in-flight checks finish, then stop."""
        self.health.enter_graceful_shutdown()
        if self._grpc is not None:
            self._grpc.stop(
                self.settings.grace_seconds if grace is None else grace
            ).wait()
            self._grpc = None
        self.registry.stop()

    def wait(self) -> None:
        """Block until the gRPC server stops."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def _set_health(self, status: int) -> None:
        for service in ("", AUTHZ_SERVICE):
            self.health.set(service, status)
