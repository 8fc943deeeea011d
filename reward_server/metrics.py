"""Prometheus metrics: what the dashboard (services/monitoring/grafana) and the alert rules read.

Two registries, because the app and the parts below it live differently:

- `Metrics`: one per app instance (tests build many apps in one process): requests, completions, cache
  lookups, refusals, and each backend's latency. Served by the server's GET /metrics.
- `COMPONENTS`: one per process, for what lives below the app and also runs in `reward-server worker`: the
  sandbox's test outcomes, the math worker pool's restarts, the job queue and the memory of its Redis.
  `Metrics` re-exports it (so the server's /metrics has everything), and a worker serves it, with its own
  `WorkerMetrics`, on REWARD_METRICS_PORT.

Label values that are known in advance are created at zero, so that every series the dashboard queries
exists before the first event (a rate over a missing series is no data, not zero).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from reward_server.verdict import Verdict
    from sandbox.schemas import TestRun

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
SANDBOX_OUTCOMES = ("ok", "timeout", "memory", "runtime_error", "output_limit")
VERDICT_STATUSES = ("correct", "incorrect", "no_answer", "error")
MATH_RESTART_REASONS = ("timeout", "crash", "cancelled")
QUEUE_PHASES = ("backlog", "queued", "running")
QUEUE_EVENTS = ("answered", "error_no_worker", "error_overran", "requeued_lost", "requeued_abandoned")
REFUSALS = ("invalid_request", "queue_full", "queue_unavailable", "queue_storage_full", "internal")


class _Reexport(Collector):
    """Yields another registry's metrics (the process-wide components, inside an app's registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class Components:
    """Process-wide metrics of the sandbox, the math pool, the job queue and Redis."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sandbox_test_runs = Counter(
            "reward_sandbox_test_runs_total", "Tests run in this process's sandbox, by outcome", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.sandbox_failures = Counter(
            "reward_sandbox_failures_total",
            "Sandbox sessions lost to an infrastructure failure (the runner or container is replaced; the "
            "program's verdict is `error`), by exception",
            ["kind"],
            registry=r,
        )
        self.code_verdicts = Counter(
            "reward_code_verdicts_total", "Programs graded by this process's sandbox, by status", ["status"],
            registry=r,
        )  # fmt: skip
        self.math_worker_restarts = Counter(
            "reward_math_worker_restarts_total",
            "Math worker processes killed and replaced, by reason (timeout: an answer hit the deadline)",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "reward_queue_depth",
            "Code jobs accepted and not answered, all servers together (what REWARD_QUEUE_MAX_DEPTH bounds)",
            registry=r,
        )
        self.queue_max_depth = Gauge("reward_queue_max_depth", "REWARD_QUEUE_MAX_DEPTH", registry=r)
        self.queue_jobs = Gauge(
            "reward_queue_jobs",
            "This server's unanswered code jobs, by phase (backlog: held back by fair sharing; queued: in "
            "Redis, waiting for a worker; running: taken by a worker)",
            ["phase"],
            registry=r,
        )
        self.queue_stream_length = Gauge(
            "reward_queue_stream_length", "Entries of the job stream (queued and running jobs)", registry=r
        )
        self.queue_wait_seconds = Histogram(
            "reward_queue_wait_seconds",
            "Time from a job's acceptance to a worker taking it (the part of a job's latency that is the "
            "queue's, not the program's)",
            registry=r,
            buckets=WAIT_BUCKETS,
        )
        self.queue_job_events = Counter(
            "reward_queue_job_events_total",
            "What became of this server's code jobs (answered; error_no_worker: no live worker for "
            "REWARD_QUEUE_MAX_WAIT_S; error_overran: ran past its budget; requeued_*: lost or abandoned, "
            "enqueued again)",
            ["event"],
            registry=r,
        )
        self.queue_workers_alive = Gauge(
            "reward_queue_workers_alive",
            "Workers that heartbeated within REWARD_QUEUE_CLAIM_AFTER_S (seen from Redis)",
            registry=r,
        )
        self.queue_worker_slots = Gauge(
            "reward_queue_worker_slots", "Programs the live workers can run at once, together", registry=r
        )
        self.queue_active_requests = Gauge(
            "reward_queue_active_requests",
            "Requests with code jobs in flight, all servers together",
            registry=r,
        )
        self.queue_fair_share = Gauge(
            "reward_queue_fair_share",
            "Jobs one request may have queued or running at once (worker slots / active requests + 1)",
            registry=r,
        )
        self.redis_memory_used = Gauge(
            "reward_redis_memory_used_bytes",
            "Redis used_memory, by store (queue, cache)",
            ["store"],
            registry=r,
        )
        self.redis_memory_max = Gauge(
            "reward_redis_memory_max_bytes", "Redis maxmemory (0: no limit), by store", ["store"], registry=r
        )
        self.redis_noeviction = Gauge(
            "reward_redis_noeviction",
            "1 if the store's Redis refuses writes when full instead of evicting keys",
            ["store"],
            registry=r,
        )
        self.cache_write_skips = Counter(
            "reward_cache_write_skips_total",
            "Verdicts not cached, by reason (redis_nearly_full: the cache yields a noeviction Redis to the "
            "queue; redis_error: a write failed)",
            ["reason"],
            registry=r,
        )
        for outcome in SANDBOX_OUTCOMES:
            self.sandbox_test_runs.labels(outcome)
        for status in VERDICT_STATUSES:
            self.code_verdicts.labels(status)
        for reason in MATH_RESTART_REASONS:
            self.math_worker_restarts.labels(reason)
        for phase in QUEUE_PHASES:
            self.queue_jobs.labels(phase)
        for event in QUEUE_EVENTS:
            self.queue_job_events.labels(event)
        for reason in ("redis_nearly_full", "redis_error"):
            self.cache_write_skips.labels(reason)
        self.sandbox_failures.labels("SandboxCrashed")

    # Hooks for the sandbox executor (reward_server/code_execution/local.py): one call per test run, one per
    # sandbox failure, one per graded batch of programs.

    def test_run(self, run: TestRun) -> None:
        self.sandbox_test_runs.labels(run.outcome.value).inc()

    def sandbox_failure(self, exc: BaseException) -> None:
        self.sandbox_failures.labels(type(exc).__name__).inc()

    def programs_graded(self, verdicts: Sequence[Verdict]) -> None:
        for verdict in verdicts:
            self.code_verdicts.labels(verdict.status.value).inc()


COMPONENTS = Components()


class Metrics:
    """Metrics of one app instance (own registry, so tests can build many apps), plus `COMPONENTS`."""

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
        self.backend_seconds = Histogram(
            "reward_backend_seconds",
            "Latency of one group's grading by its backend (completions missing from the cache), by backend",
            ["backend"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        for outcome in ("hit", "miss"):
            self.cache_lookups.labels(outcome)
        for kind in REFUSALS:
            self.rejected.labels(kind)
        self.registry.register(_Reexport(COMPONENTS.registry))

    def watch_backends(self, names: Iterable[str]) -> None:
        """Create each backend's latency series at zero."""
        for name in names:
            self.backend_seconds.labels(name)


class WorkerMetrics:
    """What only a `reward-server worker` has: its jobs; served with `COMPONENTS` and the process's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "reward_worker_jobs_total", "Jobs this worker answered, by verdict status", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.job_seconds = Histogram(
            "reward_worker_job_seconds",
            "Time from taking a job to answering it (the program's run, plus fetching its problem)",
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.running = Gauge("reward_worker_running_jobs", "Jobs running now", registry=self.registry)
        self.slots = Gauge(
            "reward_worker_slots", "Jobs this worker runs at once at most", registry=self.registry
        )
        for status in VERDICT_STATUSES:
            self.jobs.labels(status)
        ProcessCollector(registry=self.registry)
        self.registry.register(_Reexport(COMPONENTS.registry))


@contextmanager
def metrics_port(port: int, host: str, registry: CollectorRegistry) -> Iterator[None]:
    """Serve `registry` on a port of its own (REWARD_METRICS_PORT; 0: nothing) for the duration of the block.

    Unauthenticated, unlike the server's /metrics: for a private network such as compose's, where
    Prometheus finds every replica by DNS without holding an API key.
    """
    if not port:
        yield
        return
    server, thread = start_http_server(port, host, registry)
    log.info("metrics on %s:%d", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
