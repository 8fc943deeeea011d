"""Component metrics: the sandbox hooks count, every app re-exports them, label values exist at zero."""

from __future__ import annotations

from prometheus_client import generate_latest

from reward_server.metrics import COMPONENTS, Metrics, WorkerMetrics
from reward_server.schemas import Status
from reward_server.verdict import Verdict
from sandbox.errors import SandboxCrashed
from sandbox.schemas import Outcome, TestRun


def value(name: str, **labels: str) -> float:
    sample = COMPONENTS.registry.get_sample_value(name, labels)
    assert sample is not None, (name, labels)
    return sample


def test_sandbox_hooks_count_test_outcomes_lost_sessions_and_verdicts() -> None:
    timeouts = value("reward_sandbox_test_runs_total", outcome="timeout")
    crashed = value("reward_sandbox_failures_total", kind="SandboxCrashed")
    errors = value("reward_code_verdicts_total", status="error")
    COMPONENTS.test_run(TestRun(outcome=Outcome.TIMEOUT))
    COMPONENTS.sandbox_failure(SandboxCrashed("runner died"))
    COMPONENTS.programs_graded([Verdict(Status.ERROR), Verdict(Status.CORRECT)])
    assert value("reward_sandbox_test_runs_total", outcome="timeout") == timeouts + 1
    assert value("reward_sandbox_failures_total", kind="SandboxCrashed") == crashed + 1
    assert value("reward_code_verdicts_total", status="error") == errors + 1


def test_an_app_and_a_worker_export_the_components_too() -> None:
    for registry in (Metrics().registry, WorkerMetrics().registry):
        text = generate_latest(registry).decode()
        for name in (
            "reward_sandbox_test_runs_total",
            "reward_math_worker_restarts_total",
            "reward_queue_depth",
        ):
            assert name in text


def test_known_label_values_exist_before_any_event() -> None:
    """A rate over a series that does not exist is no data, not zero: the dashboard needs them at zero."""
    text = generate_latest(Metrics().registry).decode()
    for line in (
        'reward_sandbox_test_runs_total{outcome="memory"}',
        'reward_math_worker_restarts_total{reason="crash"}',
        'reward_queue_job_events_total{event="error_no_worker"}',
        'reward_rejected_requests_total{kind="queue_full"}',
        'reward_cache_lookups_total{outcome="hit"}',
    ):
        assert line in text, line
