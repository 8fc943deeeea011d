"""The monitoring profile against live processes: Debian's Prometheus (`apt-get install prometheus`) runs the
shipped scrape config and alert rules (services/monitoring/prometheus/) against a real redis-server,
`reward-server serve` and a `reward-server worker` with its metrics port, and every metric that the Grafana
dashboard or an alert rule reads must exist in what Prometheus scraped.

One substitution: the addresses. The shipped config names compose's services (`reward-server:8000`, and the
`sandbox-worker` replicas by DNS, which Docker's embedded DNS answers with one A record per replica); here
they are the local processes' ports, as static targets under the same job names (Prometheus's DNS discovery
asks the nameservers of /etc/resolv.conf, which know no `sandbox-worker` outside compose). That compose's DNS
answers with every replica, each serving /metrics, is checked by test_compose.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.integration.test_queue import ADD, WRONG, Stack, fenced, statuses, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MONITORING = REPO / "services" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "reward-server.json"


def queried_metrics() -> set[str]:
    """Every metric name the dashboard's panels and the alert rules read."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [
        rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    return set().union(*(re.findall(r"\b(reward_[a-z0-9_]+|up)\b", expr) for expr in exprs))


class Prometheus:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (apt-get install prometheus)")
        path = directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={path}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._ready, 60, "Prometheus to start")

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, path: str, **params: str) -> Any:
        body = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return data

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, REWARD_METRICS_PORT=str(free_port()))
    yield stack
    stack.close()


def test_prometheus_scrapes_every_metric_the_dashboard_and_alerts_read(stack: Stack, tmp_path: Path) -> None:
    server_metrics_port = stack.env["REWARD_METRICS_PORT"]
    server = stack.start_server()
    stack.env["REWARD_METRICS_PORT"] = worker_port = str(free_port())
    stack.start_worker("w1")
    # Traffic that touches every part: math, code (right, wrong, a timeout), through the queue.
    endless = "import time\ntime.sleep(30)\n" + ADD
    code = stack.grade(
        [fenced(ADD), fenced(WRONG), fenced(endless)],
        reference={"tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit_s": 1},
    )
    assert statuses(code) == ["correct", "incorrect", "incorrect"]
    math = {"group_id": "m", "backend": "math", "reference": {"answer": "4"}, "completions": ["\\boxed{4}"]}
    assert httpx.post(server.url + "/v1/grade", json={"groups": [math]}, timeout=60).status_code == 200

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"reward-server", "sandbox-worker"}
    # Server and worker: the same setting (one env here), their own ports.
    jobs["reward-server"]["static_configs"] = [{"targets": [f"127.0.0.1:{server_metrics_port}"]}]
    (discovery,) = jobs["sandbox-worker"].pop("dns_sd_configs")
    jobs["sandbox-worker"]["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    assert discovery["port"] == 9464  # compose's REWARD_METRICS_PORT
    prometheus = Prometheus(tmp_path, config)
    try:

        def targets_up() -> bool:
            targets = prometheus.api("targets")["activeTargets"]
            return len(targets) == 2 and all(target["health"] == "up" for target in targets)

        wait_for(targets_up, 60, "Prometheus to scrape the server and the worker")
        wait_for(lambda: bool(prometheus.query("max(reward_queue_workers_alive) == 1")), 30, "a live worker")
        scraped = set(prometheus.api("label/__name__/values"))
        missing = {name for name in queried_metrics() if name not in scraped}
        assert not missing, f"queried by the dashboard or alerts, never scraped: {sorted(missing)}"
        # The worker's own port: its jobs and its sandbox's test outcomes.
        worker = 'job="sandbox-worker"'
        assert prometheus.query(f'reward_worker_jobs_total{{{worker}, status="correct"}} >= 1')
        assert prometheus.query(f'reward_sandbox_test_runs_total{{{worker}, outcome="timeout"}} >= 1')
        assert prometheus.query('reward_backend_seconds_count{backend="code"} >= 1')
        assert prometheus.query('reward_redis_memory_max_bytes{store="queue"}')
        assert prometheus.query("reward_queue_wait_seconds_count >= 3")
        # Every panel's query is valid PromQL, and the alert rules evaluate without error.
        for expr in (
            t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])
        ):
            prometheus.query(expr)
        time.sleep(2)  # an evaluation or two
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        assert len(rules) == 7 and all(rule["health"] == "ok" for rule in rules), rules
        assert not [rule["name"] for rule in rules if rule["state"] == "firing"]
    finally:
        prometheus.stop()
