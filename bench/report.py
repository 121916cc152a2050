"""The results as plain-text tables (the JSON file holds everything)."""

from __future__ import annotations

from typing import Any


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _cpu(result: dict[str, Any], name: str) -> str:
    value = result.get("cpu_us_per_request", {}).get(name)
    return "-" if value is None else f"{value:.0f}"


def throughput(shapes: dict[str, Any]) -> str:
    rows = []
    for shape, data in shapes.items():
        if "throughput" not in data:
            continue
        r = data["throughput"]
        rows.append(
            [
                shape,
                data["name"],
                f"{r['rps']:.0f}",
                _ms(r["p50_us"]),
                _ms(r["p99_us"]),
                str(r["errors"]),
                _cpu(r, "envoy"),
                _cpu(r, "authz_server"),
                _cpu(r, "loadgen"),
            ]
        )
    headers = [
        "shape",
        "",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "envoy us/req",
        "authz us/req",
        "wrk us/req",
    ]
    return "Throughput (wrk, closed loop)\n" + table(headers, rows)


def fixed(shapes: dict[str, Any]) -> str:
    rows = []
    for shape, data in shapes.items():
        for rate, r in data.get("fixed", {}).items():
            not_ok = sum(n for s, n in r["statuses"].items() if s != "200")
            rows.append(
                [
                    shape,
                    rate,
                    f"{r['achieved_rps']:.0f}",
                    _ms(r["p50_us"]),
                    _ms(r["p99_us"]),
                    _ms(r["p999_us"]),
                    str(not_ok),
                    _cpu(r, "envoy"),
                    _cpu(r, "authz_server"),
                ]
            )
    headers = [
        "shape",
        "rate",
        "achieved",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "non-200",
        "envoy us/req",
        "authz us/req",
    ]
    return "Fixed rate (h2load --rps, HTTP/2)\n" + table(headers, rows)


def inproc(data: dict[str, Any]) -> str:
    rows = [
        [
            name,
            f"{r['per_second']:.0f}",
            f"{r['us']:.1f}",
            f"{r['ratio_to_raw_verify']:.2f}x" if "ratio_to_raw_verify" in r else "",
        ]
        for name, r in data["cases"].items()
    ]
    rows += [
        [
            f"raw cryptography verify {name}",
            f"{r['per_second']:.0f}",
            f"{r['us']:.1f}",
            "",
        ]
        for name, r in data["raw_verify"].items()
    ]
    where = f"CPU {data['cpu']}" if data["cpu"] is not None else "one thread, unpinned"
    headers = ["case", "decisions/s", "us each", "vs raw"]
    return f"In-process Check ({where})\n" + table(headers, rows)


def cache(data: dict[str, Any]) -> str:
    return (
        f"Cache memory: {data['tokens']} distinct tokens of {data['token_chars']} "
        f"chars ({data['allowed']} allowed): RSS {data['rss_before_mb']:.1f} -> "
        f"{data['rss_after_mb']:.1f} MB, {data['bytes_per_token']:.0f} B/token, "
        f"{data['rss_at_100k_mb']:.1f} MB projected at 100,000"
    )


def soak(data: dict[str, Any]) -> str:
    lines = [
        f"Soak: {data['seconds']:.0f} s at {data['rate']}/s, p99 "
        f"{_ms(data['latency']['p99_us'])} ms"
    ]
    for name, rss in data["rss"].items():
        lines.append(
            f"  {name} RSS MB: start {rss['start_mb']:.1f}, end {rss['end_mb']:.1f}, "
            f"max {rss['max_mb']:.1f}"
        )
    return "\n".join(lines)


def header(results: dict[str, Any]) -> str:
    m = results["machine"]
    pins = ", ".join(f"{k}={v}" for k, v in results["pinning"].items() if v)
    allowed = {k: v.get("cpus_allowed") for k, v in results["shapes"].items()}
    dirty = " (dirty)" if m["git_dirty"] else ""
    load = m["load_average_at_start"][0]
    return "\n".join(
        [
            f"{m['cpu_model']}, {m['cores']} cores, load {load:.2f} at start",
            f"Python {m['python']}, Envoy {m['envoy']}, "
            f"commit {m['git_commit'][:10]}{dirty}",
            f"pinning: {pins or 'none (no taskset)'}; CPUs allowed: {allowed}",
        ]
    )


def render(results: dict[str, Any]) -> str:
    parts = [header(results)]
    if any("throughput" in v for v in results["shapes"].values()):
        parts.append(throughput(results["shapes"]))
        parts.append(
            "ratios (req/s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in results["ratios"].items())
        )
    if any("fixed" in v for v in results["shapes"].values()):
        parts.append(fixed(results["shapes"]))
    if "inproc" in results:
        parts.append(inproc(results["inproc"]))
    if "cache" in results:
        parts.append(cache(results["cache"]))
    if "soak" in results:
        parts.append(soak(results["soak"]))
    if "profile" in results:
        parts.append(results["profile"])
    return "\n\n".join(parts)
