"""The load generators: wrk (closed loop, most requests/s) and h2load (fixed rate).

* wrk (Debian ``wrk``) keeps ``connections`` HTTP/1.1 connections busy and
  reports the throughput ceiling; ``wrk_report.lua`` prints its summary as JSON.
* h2load (Debian ``nghttp2-client``) with ``--rps`` sends a fixed number of
  requests per second per client over HTTP/2 (h2c). Its per-request log
  (``--log-file``) gives every latency, from which p50/p99/p99.9 are computed
  here. A request is timed from when h2load sends it; with up to ``MAX_STREAMS``
  requests in flight per connection a slow answer does not hold the next request
  back, so the schedule stays open-loop unless the generator itself runs out of
  CPU (the achieved rate is reported so that shows).
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
MAX_STREAMS = 64
MARK = "BENCH_JSON "


class LoadError(RuntimeError):
    """A load generator is missing or failed."""


@dataclass(frozen=True)
class Load:
    """Where and what to send."""

    url: str
    token: str
    cpus: str | None


def require(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is None:
        raise LoadError(f"{command} not found: apt-get install -y {package}")
    return path


def version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "?"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], timeout: float) -> tuple[str, float]:
    """Run a load generator; return its stdout and the CPU seconds it used."""
    before = _children_cpu()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"{command[0]} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout, _children_cpu() - before


def wrk(load: Load, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    """Closed-loop run: requests/s and latency percentiles (microseconds)."""
    command = [
        require("wrk", "wrk"),
        "-t",
        str(threads),
        "-c",
        str(max(connections, threads)),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        "-H",
        f"authorization: Bearer {load.token}",
        load.url,
    ]
    out, cpu = _run(procs.pinned(command, load.cpus), seconds + 60)
    line = next((x for x in out.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise LoadError(f"wrk printed no summary:\n{out}")
    result: dict[str, Any] = json.loads(line[len(MARK) :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(v for k, v in result.items() if k.startswith("errors_"))
    result["loadgen_cpu_s"] = cpu
    return result


def h2load(
    load: Load, seconds: float, rate: int, clients: int, log_path: Path
) -> dict[str, Any]:
    """Fixed-rate run at ``rate`` requests/s in all; latencies from the log."""
    clients = max(1, min(clients, rate))
    command = [
        require("h2load", "nghttp2-client"),
        "-c",
        str(clients),
        "-m",
        str(MAX_STREAMS),
        "--rps",
        str(rate / clients),
        "-D",
        str(max(1, round(seconds))),
        "--warm-up-time",
        "1",
        "--log-file",
        str(log_path),
        "-H",
        f"authorization: Bearer {load.token}",
        load.url,
    ]
    _, cpu = _run(procs.pinned(command, load.cpus), seconds + 60)
    result = summarize_log(log_path, seconds)
    result.update(target_rps=rate, clients=clients, loadgen_cpu_s=cpu)
    return result


def summarize_log(log_path: Path, seconds: float) -> dict[str, Any]:
    """Count, achieved rate, statuses and latency percentiles of an h2load log."""
    latencies: list[int] = []
    statuses: dict[str, int] = {}
    for line in log_path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        statuses[parts[1]] = statuses.get(parts[1], 0) + 1
        latencies.append(int(parts[2]))
    latencies.sort()
    return {
        "requests": len(latencies),
        "achieved_rps": len(latencies) / seconds if seconds else 0.0,
        "statuses": statuses,
        "p50_us": percentile(latencies, 50),
        "p99_us": percentile(latencies, 99),
        "p999_us": percentile(latencies, 99.9),
        "max_us": latencies[-1] if latencies else 0,
    }


def percentile(ordered: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
