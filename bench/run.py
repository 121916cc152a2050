"""``make bench``: Envoy in three shapes under load, the Check handler in process.

Shapes, each on loopback behind the same load generator, token and policy, with a
route Envoy answers itself: A no auth (the ceiling), B Envoy's native jwt_authn +
rbac as istiod writes them, C Envoy ext_authz (gRPC) -> authz-server (and C+log:
C with the production INFO decision log). Modes: ``throughput`` (wrk, closed loop),
``fixed`` (h2load at fixed rates), ``inproc`` (Check handler microbenchmark),
``cache`` (RSS with many cached tokens); ``--soak`` adds a long fixed-rate run
sampling memory. Prints tables and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from bench import inproc, loadgen, machine, material, memory, procs, report, stack

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("throughput", "fixed", "inproc", "cache")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    add = parser.add_argument
    add("--quick", action="store_true", help="short everything (a smoke run)")
    add("--duration", type=float, help="seconds per load run (10; quick 3)")
    add("--warmup", type=float, help="seconds of unmeasured load first (2; quick 1)")
    add("--connections", type=int, default=32, help="wrk connections (32)")
    add("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    add("--rates", default="1000,5000", help="fixed rates, requests/s (1000,5000)")
    add("--fixed-clients", type=int, default=10, help="h2load connections (10)")
    add("--shapes", default="A,B,C,C+log", help="of A,B,C,C+log (all)")
    add("--modes", default=",".join(MODES), help=f"of {','.join(MODES)} (all)")
    add("--envoy-concurrency", type=int, default=1, help="Envoy workers (1)")
    add("--pin-envoy", metavar="CPUS", help="taskset CPU list for Envoy")
    add("--pin-authz", metavar="CPUS", help="taskset CPU list for authz-server")
    add("--pin-load", metavar="CPUS", help="taskset CPU list for wrk/h2load")
    add("--inproc-seconds", type=float, help="seconds per in-process case (2; q 0.5)")
    add("--inproc-cpu", type=int, help="pin the in-process benchmark to this CPU")
    add("--uncached-tokens", type=int, help="distinct tokens per algorithm (2000)")
    add("--cache-tokens", type=int, help="distinct cached tokens (100000; q 10000)")
    add("--soak", type=float, default=0.0, metavar="SECONDS", help="soak run (off)")
    add("--soak-rate", type=int, help="soak rate, requests/s (the first of --rates)")
    add("--soak-interval", type=float, default=5.0, help="RSS sample period (5 s)")
    add("--profile", action="store_true", help="cProfile the in-process Check")
    add("--keep-work", action="store_true", help="keep keys, configs and logs")
    add("--out", type=Path, help="results file (bench/results/bench-<time>.json)")
    args = parser.parse_args(argv)
    _defaults(args)
    return args


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    fill = {
        "duration": 3.0 if quick else 10.0,
        "warmup": 1.0 if quick else 2.0,
        "inproc_seconds": 0.5 if quick else 2.0,
        "uncached_tokens": 200 if quick else 2000,
        "cache_tokens": 10_000 if quick else 100_000,
    }
    for name, value in fill.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.rate_list = [int(rate) for rate in args.rates.split(",") if rate]
    args.shape_list = [shape for shape in args.shapes.split(",") if shape]
    args.mode_list = [mode for mode in args.modes.split(",") if mode]
    unknown = set(args.shape_list) - set(stack.SHAPE_NAMES)
    unknown |= set(args.mode_list) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown shape or mode: {', '.join(sorted(unknown))}")
    if args.soak_rate is None:
        args.soak_rate = args.rate_list[0] if args.rate_list else 1000


def measure(
    load: loadgen.Load, running: stack.Running, run: Any
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run ``run()`` and the CPU seconds Envoy and authz-server used meanwhile."""
    pids = {"envoy": running.envoy_pid}
    if running.authz_pid is not None:
        pids["authz_server"] = running.authz_pid
    before = {name: procs.cpu_seconds(pid) for name, pid in pids.items()}
    result: dict[str, Any] = run()
    used = {name: procs.cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return result, used


def _per_request(result: dict[str, Any], used: dict[str, float]) -> None:
    count = max(1, result["requests"])
    result["cpu_us_per_request"] = {k: v / count * 1e6 for k, v in used.items()}
    result["cpu_us_per_request"]["loadgen"] = result["loadgen_cpu_s"] / count * 1e6


def run_shape(
    shape: str, args: argparse.Namespace, stuff: material.Material, pin: stack.Pinning
) -> dict[str, Any]:
    """Throughput and fixed-rate runs of one shape."""
    out: dict[str, Any] = {"name": stack.SHAPE_NAMES[shape]}
    with stack.start_shape(shape, stuff, pin, args.envoy_concurrency) as running:
        out["cpus_allowed"] = {"envoy": procs.allowed_cpus(running.envoy_pid)}
        if running.authz_pid is not None:
            out["cpus_allowed"]["authz_server"] = procs.allowed_cpus(running.authz_pid)
        load = loadgen.Load(running.url, stuff.token, pin.load)
        if "throughput" in args.mode_list:
            loadgen.wrk(load, args.warmup, args.connections, args.wrk_threads)
            result, used = measure(
                load,
                running,
                lambda: loadgen.wrk(
                    load, args.duration, args.connections, args.wrk_threads
                ),
            )
            _per_request(result, used)
            out["throughput"] = result
        if "fixed" in args.mode_list:
            out["fixed"] = {}
            for rate in args.rate_list:
                log = stuff.work / f"h2load-{shape}-{rate}.log"
                result, used = measure(
                    load,
                    running,
                    lambda rate=rate, log=log: loadgen.h2load(
                        load, args.duration, rate, args.fixed_clients, log
                    ),
                )
                _per_request(result, used)
                out["fixed"][str(rate)] = result
    return out


def soak(
    args: argparse.Namespace, stuff: material.Material, pin: stack.Pinning
) -> dict[str, Any]:
    """Shape C at ``--soak-rate`` for ``--soak`` seconds, sampling RSS."""
    with stack.start_shape("C", stuff, pin, args.envoy_concurrency) as running:
        assert running.authz_pid is not None
        load = loadgen.Load(running.url, stuff.token, pin.load)
        pids = {"authz_server": running.authz_pid, "envoy": running.envoy_pid}
        with memory.RssSampler(pids, args.soak_interval) as sampler:
            fixed = loadgen.h2load(
                load,
                args.soak,
                args.soak_rate,
                args.fixed_clients,
                stuff.work / "h2load-soak.log",
            )
    return {
        "seconds": args.soak,
        "rate": args.soak_rate,
        "latency": fixed,
        "rss": sampler.summary(),
    }


def ratios(shapes: dict[str, Any]) -> dict[str, float]:
    """C/B and C/A of throughput requests/s."""
    rps = {k: v["throughput"]["rps"] for k, v in shapes.items() if "throughput" in v}
    found = {}
    for a, b in (("C", "B"), ("C", "A"), ("B", "A"), ("C+log", "C")):
        if a in rps and b in rps and rps[b]:
            found[f"{a}/{b}"] = rps[a] / rps[b]
    return found


@contextlib.contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="authz-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work files kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every started process is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _stop_on_sigterm()
    pin = stack.Pinning(args.pin_envoy, args.pin_authz, args.pin_load)
    results: dict[str, Any] = {
        "machine": machine.info(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "pinning": vars(pin),
        "shapes": {},
    }
    results["settings"]["loadgen"] = {"throughput": "wrk", "fixed": "h2load --rps"}
    with work_dir(args.keep_work) as work:
        stuff = material.create(work)
        for shape in args.shape_list:
            if {"throughput", "fixed"} & set(args.mode_list):
                print(f"shape {shape}: {stack.SHAPE_NAMES[shape]} ...", flush=True)
                results["shapes"][shape] = run_shape(shape, args, stuff, pin)
        results["ratios"] = ratios(results["shapes"])
        if "inproc" in args.mode_list:
            print("in-process Check ...", flush=True)
            results["inproc"] = inproc.run(
                stuff, args.inproc_seconds, args.uncached_tokens, args.inproc_cpu
            )
        if args.profile:
            results["profile"] = inproc.profile(
                stuff, args.inproc_seconds, args.uncached_tokens
            )
        if "cache" in args.mode_list and args.cache_tokens:
            print(f"cache memory, {args.cache_tokens} tokens ...", flush=True)
            results["cache"] = memory.cached_tokens(stuff, args.cache_tokens, pin)
        if args.soak:
            print(f"soak, {args.soak:.0f} s at {args.soak_rate}/s ...", flush=True)
            results["soak"] = soak(args, stuff, pin)
    print(report.render(results))
    out = args.out or RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
