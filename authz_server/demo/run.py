"""The demo: Envoy on 127.0.0.1:8080 -> authz-server -> an echo upstream.

``python -m authz_server.demo`` (``make run``) does, in order:

1. checks that every demo port is free (and names the one that is not);
2. makes an RSA key pair (``.demo/private.pem``, ``.demo/jwks.json``) and
   mints demo tokens (``.demo/*.jwt``); logs go to ``.demo/*.log`` too;
3. serves the key set with :class:`KeyServer` on 127.0.0.1:9090;
4. starts :class:`EchoUpstream` on 127.0.0.1:9080;
5. runs ``authz-server serve --config examples/demo/policy.yaml --grpc-listen
   127.0.0.1:9001`` and waits until gRPC health says SERVING;
6. runs Envoy with ``envoy/front-proxy.yaml`` and waits until it is LIVE;
7. prints curl commands (200, 401, 403) and waits for Ctrl-C or SIGTERM,
   then stops everything in reverse order and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_server import tokens
from authz_server.demo._process import (
    Started,
    find_command,
    log_tail,
    spawn_logged,
    terminate,
)
from authz_server.demo.echo import EchoUpstream
from authz_server.demo.envoy_proc import EnvoyError, EnvoyProcess
from authz_server.demo.keyserver import KeyServer

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_PATH = REPO_ROOT / "examples" / "demo" / "policy.yaml"
ENVOY_CONFIG_PATH = REPO_ROOT / "envoy" / "front-proxy.yaml"
WORK_DIR = REPO_ROOT / ".demo"

ISSUER = "https://demo.authz-server.local"
AUDIENCE = "demo-api"
KID = "demo-key-1"
TOKEN_LIFETIME_SECONDS = 3600
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
_POLL_SECONDS = 0.2


class DemoError(Exception):
    """The demo cannot start; the message says why."""


@dataclass(frozen=True)
class DemoPorts:
    """The fixed loopback ports the demo files name."""

    envoy_listener: int = 8080
    envoy_admin: int = 9901
    authz_grpc: int = 9001
    echo: int = 9080
    key_server: int = 9090

    def by_role(self) -> dict[str, int]:
        """Each port with what uses it, for error messages."""
        return {
            "Envoy listener": self.envoy_listener,
            "Envoy admin": self.envoy_admin,
            "authz-server gRPC": self.authz_grpc,
            "echo upstream": self.echo,
            "JWKS server": self.key_server,
        }


class AuthzServerProcess(Started):
    """``authz-server serve`` as a child process, ready once health is SERVING."""

    def __init__(self, policy: Path, grpc_port: int, log_path: Path) -> None:
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.log_path = log_path
        self._policy = policy
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the server and wait for SERVING; raise DemoError otherwise."""
        command = [
            find_command("authz-server", "run 'make venv' to install the project"),
            "serve",
            "--config",
            str(self._policy),
            "--grpc-listen",
            self.grpc_target,
        ]
        self._process = spawn_logged(command, self.log_path)
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if needed; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            code = terminate(process, STOP_TIMEOUT_SECONDS)
            logger.info("authz-server exited with code %d", code)

    def exit_code(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._process.poll() if self._process else None

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        options = [("grpc.enable_http_proxy", 0)]
        with grpc.insecure_channel(self.grpc_target, options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._raise_if_exited()
                if _is_serving(stub):
                    return
                time.sleep(_POLL_SECONDS)
        raise DemoError(
            f"authz-server not SERVING after {STARTUP_TIMEOUT_SECONDS}s; "
            f"log:\n{log_tail(self.log_path)}"
        )

    def _raise_if_exited(self) -> None:
        code = self.exit_code()
        if code is not None:
            raise DemoError(
                f"authz-server exited with code {code}; log:\n{log_tail(self.log_path)}"
            )


def _is_serving(stub: health_pb2_grpc.HealthStub) -> bool:
    request = health_pb2.HealthCheckRequest(service="")
    try:
        reply = stub.Check(request, timeout=1)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class StopSignal:
    """Remember a SIGINT or SIGTERM instead of raising in the middle of a step."""

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        """Route SIGINT and SIGTERM to this object."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum


def busy_ports(ports: DemoPorts) -> list[str]:
    """Describe each demo port that cannot be bound on 127.0.0.1."""
    busy = []
    for role, port in ports.by_role().items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # as the servers do: a recent connection in TIME_WAIT is not "busy"
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"127.0.0.1:{port} ({role})")
    return busy


def demo_tokens(key: tokens.PrivateKey, now: int) -> dict[str, str]:
    """Mint the tokens the printed commands use: admin, guest and expired."""
    admin = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "role": "admin"}
    guest = {**admin, "sub": "bob", "role": "guest"}
    lifetime = TOKEN_LIFETIME_SECONDS
    long_ago = now - 2 * lifetime
    return {
        "admin": tokens.mint(key, KID, admin, expires_in=lifetime, now=now),
        "guest": tokens.mint(key, KID, guest, expires_in=lifetime, now=now),
        "expired": tokens.mint(key, KID, admin, expires_in=lifetime, now=long_ago),
    }


def make_demo_keys() -> tuple[tokens.PrivateKey, bytes]:
    """Write a fresh key pair to .demo/; return the private key and the JWKS."""
    private_path, jwks_path = tokens.write_key_pair(WORK_DIR, "RS256", KID)
    return tokens.load_private_key(private_path), jwks_path.read_bytes()


def write_tokens(minted: dict[str, str]) -> None:
    """Leave the demo tokens in .demo/ to replay them."""
    for name, token in minted.items():
        (WORK_DIR / f"{name}.jwt").write_text(token + "\n", encoding="ascii")


def instructions(ports: DemoPorts, minted: dict[str, str]) -> str:
    """The ready-to-paste curl commands and where things are."""
    url = f"http://127.0.0.1:{ports.envoy_listener}/hello"
    work = WORK_DIR.relative_to(REPO_ROOT)
    return "\n".join(
        [
            f"authz-server demo is up: Envoy on {url.removesuffix('/hello')}",
            f"  logs, key and tokens: {work}/ (tail -f {work}/authz-server.log)",
            "",
            "# 200: admin token; the echo shows x-jwt-payload and x-jwt-role: admin",
            f"curl -i -H 'Authorization: Bearer {minted['admin']}' {url}",
            "# 403: guest token (valid, but role guest is not allowed)",
            f"curl -i -H 'Authorization: Bearer {minted['guest']}' {url}",
            "# 403: no token (no identity, and an ALLOW policy exists)",
            f"curl -i {url}",
            "# 401: expired token",
            f"curl -i -H 'Authorization: Bearer {minted['expired']}' {url}",
            "# 401: not a JWT",
            f"curl -i -H 'Authorization: Bearer not-a-token' {url}",
            "",
            "# mint more: .venv/bin/authz-server token mint --key "
            f"{work}/private.pem --kid {KID} --iss {ISSUER} --aud {AUDIENCE} "
            "--sub carol --claim role=user",
            "",
            "Press Ctrl-C to stop.",
        ]
    )


def wait_for_stop(
    stop: StopSignal, authz: AuthzServerProcess, envoy: EnvoyProcess
) -> int:
    """Sleep until a signal (exit code 0) or until a child dies (exit code 1)."""
    while stop.received is None:
        if authz.exit_code() is not None:
            logger.error("authz-server died; log:\n%s", log_tail(authz.log_path))
            return 1
        if envoy.exit_code() is not None:
            logger.error("Envoy died; log:\n%s", envoy.log_text())
            return 1
        time.sleep(_POLL_SECONDS)
    logger.info("signal %d received; stopping", stop.received)
    return 0


def run(ports: DemoPorts, stop: StopSignal) -> int:
    """Start every part, print the instructions, wait, stop in reverse order."""
    busy = busy_ports(ports)
    if busy:
        raise DemoError("port already in use: " + ", ".join(busy))
    for required in (POLICY_PATH, ENVOY_CONFIG_PATH):
        if not required.is_file():
            raise DemoError(
                f"{required} not found: run the demo from a source checkout"
            )

    key, jwks = make_demo_keys()
    minted = demo_tokens(key, int(time.time()))
    write_tokens(minted)

    with contextlib.ExitStack() as started:
        started.enter_context(KeyServer(ports.key_server, jwks))
        started.enter_context(EchoUpstream(ports.echo))
        authz = started.enter_context(
            AuthzServerProcess(
                POLICY_PATH, ports.authz_grpc, WORK_DIR / "authz-server.log"
            )
        )
        envoy = started.enter_context(
            EnvoyProcess(ENVOY_CONFIG_PATH, log_path=WORK_DIR / "envoy.log")
        )
        print(instructions(ports, minted), flush=True)
        return wait_for_stop(stop, authz, envoy)


def main() -> int:
    """Entry point of ``python -m authz_server.demo``."""
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    stop = StopSignal()
    stop.install()
    try:
        return run(DemoPorts(), stop)
    except (DemoError, EnvoyError, FileNotFoundError, OSError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
