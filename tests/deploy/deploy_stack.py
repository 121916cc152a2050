"""One authz-server behind three proxies, for the deployment tests (and nginx).

:func:`running_proxies` starts one in-process authz-server with both listeners
(gRPC and :class:`~authz_server.envoy_http.HttpAuthzListener`) loaded with the demo
policy, a key server for its JWKS, one echo upstream, and in front of them:

* ``grpc``:  Envoy from ``envoy/front-proxy.yaml`` (ext_authz over gRPC);
* ``http``:  Envoy from ``envoy/front-proxy-http.yaml`` (ext_authz ``http_service``);
* ``nginx``: nginx with ``examples/nginx/authz-server.conf`` (``auth_request``).

Everything listens on 127.0.0.1 with free ports and is stopped on exit.
nginx comes from Debian's ``nginx`` package: the fixture installs it with apt-get
when it is missing and it can (root, apt available); otherwise the nginx cases skip
with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import REPO_ROOT, free_port, jwks_of, send_request

from authz_server import tokens
from authz_server.demo._process import log_tail, spawn_logged, terminate
from authz_server.demo.echo import EchoUpstream
from authz_server.demo.envoy_proc import EnvoyProcess, render_config
from authz_server.demo.keyserver import KeyServer
from authz_server.demo.run import KID, POLICY_PATH
from authz_server.envoy_http import HttpAuthzListener
from authz_server.server import Server

ENVOY_GRPC = REPO_ROOT / "envoy" / "front-proxy.yaml"
ENVOY_HTTP = REPO_ROOT / "envoy" / "front-proxy-http.yaml"
NGINX_SITE = REPO_ROOT / "examples" / "nginx" / "authz-server.conf"
DEMO_JWKS_URI = "http://127.0.0.1:9090/jwks.json"
NGINX_DEMO_PORTS = {"authz": 9003, "app": 9080, "listen": 8082}
START_TIMEOUT_SECONDS = 15.0


def find_nginx() -> str | None:
    """The nginx binary, installing Debian's package first if possible."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        if done.returncode != 0:
            return None
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def render_nginx(work: Path, ports: dict[str, int]) -> Path:
    """A complete nginx.conf around the example site, with free loopback ports."""
    site = NGINX_SITE.read_text(encoding="utf-8")
    for name, demo_port in NGINX_DEMO_PORTS.items():
        old = f" 127.0.0.1:{demo_port};"
        assert site.count(old) == 1, f"{NGINX_SITE}: expected one{old}"
        site = site.replace(old, f" 127.0.0.1:{ports[name]};")
    (work / "site.conf").write_text(site, encoding="utf-8")
    temp = work / "temp"
    temp.mkdir(exist_ok=True)
    temps = " ".join(
        f"{kind}_temp_path {temp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = (
        f"daemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {work / 'nginx.pid'};\nerror_log {work / 'error.log'} warn;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; {temps} include {work / 'site.conf'}; }}\n"
    )
    if os.geteuid() == 0:
        main = "user root;\n" + main
    path = work / "nginx.conf"
    path.write_text(main, encoding="utf-8")
    return path


@contextlib.contextmanager
def running_nginx(binary: str, config: Path, port: int) -> Iterator[int]:
    """Run nginx in the foreground until the block ends; yield its port."""
    log = config.parent / "nginx.out"
    check = subprocess.run(
        [binary, "-t", "-c", str(config), "-p", str(config.parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stdout}{check.stderr}")
    process = spawn_logged([binary, "-c", str(config), "-p", str(config.parent)], log)
    try:
        _wait_until_accepting(port, process.poll)
        yield port
    finally:
        terminate(process, 5.0)
        if process.returncode not in (0, -15):
            print(log_tail(log), log_tail(config.parent / "error.log"))


def _wait_until_accepting(port: int, exited: object) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            send_request(port, "GET", "/__probe")
            return
        except OSError:
            if callable(exited) and exited() is not None:
                raise RuntimeError("nginx exited at start-up") from None
            time.sleep(0.05)
    raise RuntimeError(f"nothing accepted on 127.0.0.1:{port}")


@dataclass
class Proxies:
    """The running parts; ``ports`` maps proxy name to its listener port."""

    server: Server
    http_listener: HttpAuthzListener
    echo: EchoUpstream
    key: tokens.PrivateKey
    ports: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def running_proxies(work: Path) -> Iterator[Proxies]:
    """Start the stack in ``work``; stop everything on exit."""
    key = tokens.generate_key("RS256")
    with contextlib.ExitStack() as started:
        keys = started.enter_context(KeyServer(jwks=jwks_of(key, KID)))
        echo = started.enter_context(EchoUpstream())
        policy = work / "policy.yaml"
        policy.write_text(
            POLICY_PATH.read_text(encoding="utf-8").replace(DEMO_JWKS_URI, keys.url),
            encoding="utf-8",
        )
        server = Server(grpc_listen="127.0.0.1:0")
        server.load([str(policy)])
        grpc_port = server.start()
        started.callback(server.stop, grace=0)
        listener = HttpAuthzListener(lambda: server.snapshot, "127.0.0.1:0")
        http_port = listener.start()
        started.callback(listener.stop)
        stack = Proxies(server, listener, echo, key)

        for name, template, authz_port in (
            ("grpc", ENVOY_GRPC, grpc_port),
            ("http", ENVOY_HTTP, http_port),
        ):
            ports = {
                "admin": free_port(),
                "front_proxy": free_port(),
                "authz_server": authz_port,
                "echo": echo.port,
            }
            config = render_config(template, work / f"envoy-{name}.yaml", ports)
            envoy = EnvoyProcess(config, log_path=work / f"envoy-{name}.log")
            started.enter_context(envoy)
            stack.ports[name] = envoy.listener_ports[0]

        binary = find_nginx()
        if binary is None:
            stack.skipped["nginx"] = (
                "nginx is not installed and cannot be installed here "
                "(needs root and apt-get with access to Debian's packages)"
            )
        else:
            nginx_work = work / "nginx"
            nginx_work.mkdir()
            ports = {"authz": http_port, "app": echo.port, "listen": free_port()}
            config = render_nginx(nginx_work, ports)
            stack.ports["nginx"] = started.enter_context(
                running_nginx(binary, config, ports["listen"])
            )
        yield stack
