"""What the figures were measured on: CPU, cores, load, versions, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from authz_server.demo.envoy_proc import find_envoy
from bench.loadgen import version

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def envoy_version() -> str:
    """``1.40.0/Clean/RELEASE/BoringSSL`` from ``envoy --version``."""
    text = version([find_envoy(), "--version"])
    build = text.split("version:", 1)[-1].strip()
    return build.split("/", 1)[-1]


def info() -> dict[str, Any]:
    """Machine facts for the results file."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "load_average_at_start": os.getloadavg(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "envoy": envoy_version(),
        "wrk": version(["wrk", "-v"]),
        "h2load": version(["h2load", "--version"]),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "authz_server")),
    }
