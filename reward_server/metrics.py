"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.completions = Counter(
            "reward_completions_total",
            "Completions graded, by backend and status",
            ["backend", "status"],
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "reward_cache_lookups_total",
            "Result cache lookups, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "reward_grade_request_seconds",
            "Latency of POST /v1/grade",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.rejected = Counter(
            "reward_rejected_requests_total",
            "Requests answered with 4xx/5xx, by kind",
            ["kind"],
            registry=self.registry,
        )
