"""Real parts wired together for tests: free ports, raw HTTP requests, the Envoy stack.

The stack is one in-process authz-server, one Envoy rendered from
``envoy/front-proxy.yaml`` with free ports, and one echo upstream::

    client --http.client--> Envoy --ext_authz gRPC--> Server (in-process)
                              \\--allowed--> EchoUpstream

:meth:`Stack.use_config` swaps the server's policies between tests, and
:meth:`Stack.request` sends one raw HTTP/1.1 request and reports what reached
the upstream. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from authz_server import tokens
from authz_server.demo.echo import EchoRecord, EchoUpstream
from authz_server.demo.envoy_proc import EnvoyProcess, render_config

if TYPE_CHECKING:
    from authz_server.server import Server

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVOY_DIR = REPO_ROOT / "envoy"
FRONT_PROXY = ENVOY_DIR / "front-proxy.yaml"
REQUEST_TIMEOUT_SECONDS = 10.0
TEST_KID = "test-key-1"

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def jwks_of(key: tokens.PrivateKey, kid: str = TEST_KID) -> dict[str, Any]:
    """A key set publishing the public half of ``key`` under ``kid``."""
    return {"keys": [tokens.public_jwk(key, kid)]}


@dataclass(frozen=True)
class Response:
    """What the client got, and what the upstream saw (None if nothing)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    upstream: EchoRecord | None

    def header(self, name: str) -> str | None:
        """The first response header called ``name`` (any case), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every response header called ``name`` (any case), in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def upstream_header(self, name: str) -> list[str]:
        """Values of a request header as the upstream received it ([] if none)."""
        if self.upstream is None:
            return []
        values: list[str] = self.upstream["headers"].get(name.lower(), [])
        return values

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def send_request(
    port: int,
    method: str,
    path: str,
    headers: Headers = (),
    *,
    host: str | None = None,
    body: bytes | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send one HTTP/1.1 request to 127.0.0.1:port exactly as given.

    Header names keep their case, a name may repeat, and ``path`` is sent
    as-is (``//admin`` and ``/a%2Fb`` are not rewritten). ``Host`` defaults to
    ``127.0.0.1:port`` unless ``host`` is given or ``headers`` holds one.
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if host is not None:
        pairs.insert(0, ("Host", host))
    elif not any(name.lower() == "host" for name, _ in pairs):
        pairs.insert(0, ("Host", f"127.0.0.1:{port}"))
    if body is not None and not any(n.lower() == "content-length" for n, _ in pairs):
        pairs.append(("Content-Length", str(len(body))))

    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS
    )
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in pairs:
            connection.putheader(name, value)
        connection.endheaders(body)
        reply = connection.getresponse()
        return reply.status, reply.getheaders(), reply.read()
    finally:
        connection.close()


class Stack:
    """One in-process authz-server, one Envoy in front of it, one echo upstream."""

    def __init__(
        self, server: Server, envoy: EnvoyProcess, echo: EchoUpstream, work_dir: Path
    ) -> None:
        self.server = server
        self.envoy = envoy
        self.echo = echo
        self.work_dir = work_dir
        self._config_numbers = itertools.count(1)

    @property
    def port(self) -> int:
        """Envoy's listener port."""
        return self.envoy.listener_ports[0]

    def use_config(self, config: str | Path | Sequence[Path]) -> None:
        """Load new policies into the server (ConfigError propagates).

        A ``str`` is YAML text (written to a file first); a ``Path`` or a
        sequence of them names files or directories to load as they are.
        """
        if isinstance(config, str):
            path = self.work_dir / f"config-{next(self._config_numbers)}.yaml"
            path.write_text(config, encoding="utf-8")
            paths = [path]
        elif isinstance(config, Path):
            paths = [config]
        else:
            paths = list(config)
        self.server.load([str(path) for path in paths])

    def request(
        self,
        method: str,
        path: str,
        headers: Headers = (),
        host: str | None = None,
        body: bytes | None = None,
    ) -> Response:
        """Send one request through Envoy; see :func:`send_request`."""
        self.echo.clear()
        status, reply_headers, reply_body = send_request(
            self.port, method, path, headers, host=host, body=body
        )
        records = self.echo.requests
        upstream = records[-1] if records else None
        return Response(status, reply_headers, reply_body, upstream)


@contextlib.contextmanager
def running_stack(
    work_dir: Path, customize: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[Stack]:
    """Start the stack (nothing loaded in the server yet); stop it on exit.

    ``customize`` may change the rendered Envoy config (a parsed YAML mapping)
    before Envoy starts, e.g. to add routes with ``context_extensions``.
    """
    from authz_server.server import Server

    with contextlib.ExitStack() as started:
        echo = started.enter_context(EchoUpstream())
        server = Server(grpc_listen="127.0.0.1:0")
        grpc_port = server.start()
        started.callback(server.stop, grace=1.0)
        ports = {
            "admin": free_port(),
            "front_proxy": free_port(),
            "authz_server": grpc_port,
            "echo": echo.port,
        }
        config = render_config(FRONT_PROXY, work_dir / "front-proxy.yaml", ports)
        if customize is not None:
            document = yaml.safe_load(config.read_text())
            customize(document)
            config.write_text(yaml.safe_dump(document, sort_keys=False))
        envoy = EnvoyProcess(config, log_path=work_dir / "envoy.log")
        started.enter_context(envoy)
        yield Stack(server, envoy, echo, work_dir)
