"""The processes of one shape: authz-server (shape C) and Envoy, started and stopped.

Every process is started by a context manager, so Ctrl-C or an error stops it.
Envoy configs are the templates in ``bench/configs`` rendered with free loopback
ports by :func:`authz_server.demo.envoy_proc.render_config`.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_server.demo._process import find_command, log_tail, spawn_logged, terminate
from authz_server.demo.envoy_proc import EnvoyProcess, render_config, validate
from bench import procs
from bench.material import Material

CONFIGS = Path(__file__).resolve().parent / "configs"
SHAPES = {"A": "shape-a.yaml", "B": "shape-b.yaml", "C": "shape-c.yaml"}
SHAPE_NAMES = {
    "A": "no auth (ceiling)",
    "B": "Envoy jwt_authn + rbac",
    "C": "ext_authz gRPC -> authz-server",
    "C+log": "C with the INFO decision log",
}
STARTUP_TIMEOUT_SECONDS = 30.0


class StackError(RuntimeError):
    """A process did not start or a shape does not answer as expected."""


@dataclass(frozen=True)
class Pinning:
    """taskset CPU lists per process; None means not pinned."""

    envoy: str | None = None
    authz: str | None = None
    load: str | None = None


@dataclass(frozen=True)
class Running:
    """A started shape: where to send load and which pids to watch."""

    shape: str
    url: str
    envoy_pid: int
    authz_pid: int | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PinnedEnvoy(EnvoyProcess):
    """EnvoyProcess started under taskset when a CPU list is given."""

    def __init__(self, config_path: Path, cpus: str | None, **options: object):
        super().__init__(config_path, **options)  # type: ignore[arg-type]
        self._cpus = cpus

    def command(self) -> list[str]:
        return procs.pinned(super().command(), self._cpus)


def render_shape(shape: str, material: Material, ports: dict[str, int]) -> Path:
    """Render the Envoy config of ``shape`` into the work folder and validate it."""
    out = material.work / f"envoy-{shape}.yaml"
    render_config(CONFIGS / SHAPES[shape], out, ports)
    if shape == "B":
        config = yaml.safe_load(out.read_text(encoding="utf-8"))
        jwt_authn = _http_filters(config)[0]["typed_config"]["providers"]["origins-0"]
        jwt_authn["local_jwks"]["filename"] = str(material.jwks_path)
        out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    ok, output = validate(out)
    if not ok:
        raise StackError(f"{out}: envoy --mode validate failed:\n{output}")
    return out


def _http_filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return cast(list[dict[str, Any]], manager["http_filters"])


@contextlib.contextmanager
def authz_server(
    material: Material, policy: Path, log_level: str, cpus: str | None, name: str
) -> Iterator[tuple[int, int]]:
    """Run ``authz-server serve`` until SERVING; yield (pid, gRPC port)."""
    port = free_port()
    command = [
        find_command("authz-server", "run 'make venv'"),
        "serve",
        "--config",
        str(policy),
        "--grpc-listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        "",
        "--log-level",
        log_level,
    ]
    log_path = material.work / f"authz-server-{name}.log"
    # The decision log goes to stdout: into a file, as a container runtime would.
    process = spawn_logged(procs.pinned(command, cpus), log_path)
    try:
        _wait_serving(process, port, log_path)
        yield process.pid, port
    finally:
        terminate(process, 5.0)


def _wait_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"authz-server exited:\n{log_tail(log)}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise StackError(f"authz-server not SERVING in time:\n{log_tail(log)}")


@contextlib.contextmanager
def start_shape(
    shape: str, material: Material, pinning: Pinning, concurrency: int
) -> Iterator[Running]:
    """Start Envoy (and for C, authz-server) for ``shape``; stop both on exit."""
    with contextlib.ExitStack() as stack:
        ports = {"admin": free_port(), "bench": free_port()}
        authz_pid = None
        base = "C" if shape.startswith("C") else shape
        if base == "C":
            level = "INFO" if shape == "C+log" else "WARNING"
            authz_pid, ports["authz_server"] = stack.enter_context(
                authz_server(material, material.policy_path, level, pinning.authz, base)
            )
        config = render_shape(base, material, ports)
        envoy = PinnedEnvoy(
            config,
            pinning.envoy,
            log_path=material.work / f"envoy-{base}.log",
            concurrency=concurrency,
        )
        stack.enter_context(envoy)
        assert envoy.pid is not None
        running = Running(
            shape, f"http://127.0.0.1:{ports['bench']}/", envoy.pid, authz_pid
        )
        check_answers(running, material.token)
        yield running


def check_answers(running: Running, token: str) -> None:
    """The shape allows the bench token (200) and denies no token (403)."""
    expected = {True: 200, False: 200 if running.shape == "A" else 403}
    for with_token, status in expected.items():
        got = http_status(running.url, token if with_token else None)
        if got != status:
            raise StackError(
                f"shape {running.shape}: expected {status} "
                f"{'with' if with_token else 'without'} a token, got {got}"
            )


def http_status(url: str, token: str | None) -> int:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", "/", headers=headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status
    finally:
        connection.close()
