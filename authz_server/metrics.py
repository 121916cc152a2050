"""Prometheus metrics, with low-cardinality labels only.

Labels are decisions, reason codes, actions, results and configured JWKS URLs:
never a subject, a token, a path or anything else a client controls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from authz_server.authn.authenticate import CacheStats
from authz_server.authn.jwks import RemoteKeys
from authz_server.decision import Decision

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The metrics of one server, in their own registry."""

    def __init__(
        self, sources: Callable[[], list[RemoteKeys]], cache: CacheStats
    ) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "authz_decisions",
            "Decisions by outcome and reason code.",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "authz_check_duration_seconds",
            "Time to answer one Check.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dry_run = Counter(
            "authz_dry_run_matches",
            "Dry-run policy rules that matched, by action (not enforced).",
            ["action"],
            registry=self.registry,
        )
        self.audit = Counter(
            "authz_audit_matches",
            "Requests marked by an AUDIT policy.",
            registry=self.registry,
        )
        self.config_generation = Gauge(
            "authz_config_generation",
            "Generation number of the config in use.",
            registry=self.registry,
        )
        self.reloads = Counter(
            "authz_config_reloads",
            "Config loads by result.",
            ["result"],
            registry=self.registry,
        )
        self.last_reload = Gauge(
            "authz_config_last_reload_timestamp_seconds",
            "When a config load last finished, by result.",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_KeyCollector(sources, cache))
        self._decision_children: dict[tuple[bool, str], Any] = {}

    def decided(self, decision: Decision, seconds: float) -> None:
        """Count one decision."""
        key = (decision.allowed, decision.reason)
        child = self._decision_children.get(key)
        if child is None:
            outcome = "allow" if decision.allowed else "deny"
            child = self._decision_children[key] = self.decisions.labels(
                outcome, decision.reason
            )
        child.inc()
        self.check_seconds.observe(seconds)
        for found in decision.dry_run:
            self.dry_run.labels(found.action).inc()
        if decision.audit:
            self.audit.inc()

    def reloaded(self, ok: bool, generation: int | None = None) -> None:
        """Count one config load."""
        result = "success" if ok else "failure"
        self.reloads.labels(result).inc()
        self.last_reload.labels(result).set(time.time())
        if generation is not None:
            self.config_generation.set(generation)


class _KeyCollector(Collector):
    """Key-set and token-cache figures, read when scraped."""

    def __init__(self, sources: Callable[[], list[RemoteKeys]], cache: CacheStats):
        self._sources = sources
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        fetches = CounterMetricFamily(
            "authz_jwks_fetches",
            "JWKS fetches by URL and result.",
            labels=["jwks", "result"],
        )
        misses = CounterMetricFamily(
            "authz_jwks_kid_miss_refetches",
            "Refetches after an unknown kid.",
            labels=["jwks"],
        )
        keys = GaugeMetricFamily("authz_jwks_keys", "Usable keys.", labels=["jwks"])
        skipped = GaugeMetricFamily(
            "authz_jwks_keys_skipped", "Keys skipped as unusable.", labels=["jwks"]
        )
        age = GaugeMetricFamily(
            "authz_jwks_age_seconds", "Age of the key set in use.", labels=["jwks"]
        )
        for source in self._sources():
            for result, count in source.fetch_results.items():
                fetches.add_metric([source.url, result], count)
            misses.add_metric([source.url], source.miss_refetches)
            current = source.current
            keys.add_metric([source.url], len(current.keys) if current else 0)
            skipped.add_metric([source.url], current.skipped if current else 0)
            age.add_metric([source.url], source.age() or 0.0)
        yield from (fetches, misses, keys, skipped, age)

        cache = CounterMetricFamily(
            "authz_token_cache", "Verified-token cache lookups.", labels=["result"]
        )
        cache.add_metric(["hit"], self._cache.hits)
        cache.add_metric(["miss"], self._cache.misses)
        yield cache
