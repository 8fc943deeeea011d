"""docker-compose.yml against the Compose Specification schema, its hardening rules, and the worker's seccomp
profile. No Docker needed: compose v1 checks the file in the `compose` smoke test, this covers v2's schema.

tests/data/compose-spec.json is schema/compose-spec.json of github.com/compose-spec/compose-spec at commit
170098ba07d9 (Apache-2.0), unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
WORKER_SECCOMP = REPO / "sandbox" / "seccomp.json"
NAMESPACE_CALLS = {"unshare", "mount", "umount2", "pivot_root"}
MONITORING = REPO / "services" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "reward-server.json"
PROMETHEUS = MONITORING / "prometheus" / "prometheus.yml"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
STACK = {"redis", "redis-cache", "reward-server", "sandbox-worker"}
MONITORING_SERVICES = {"prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # (resolves the `<<:` merge keys, as both compose versions do)
    assert isinstance(data, dict)
    return data


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft7Validator)


def test_schema_rejects_what_v2_would_reject(compose: dict[str, Any]) -> None:
    """The check has teeth: a misspelt key fails it."""
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft7Validator)


def test_stack_has_its_services_with_limits_and_restarts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == STACK | MONITORING_SERVICES
    assert "version" not in compose
    for name, service in services.items():
        assert not service.get("privileged"), name
        assert "deploy" not in service, f"{name}: compose v1 ignores deploy:, use mem_limit/cpus/pids_limit"
        for key in ("mem_limit", "cpus", "pids_limit", "restart"):
            assert key in service, f"{name} has no {key}"
        assert service["cap_drop"] == ["ALL"], name
        assert service["read_only"] is True, name
        assert any(opt.startswith("no-new-privileges") for opt in service["security_opt"]), name
        assert "SYS_ADMIN" not in service.get("cap_add", []), name
        assert not any("unconfined" in opt and "seccomp" in opt for opt in service["security_opt"]), name


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    server_check = services["reward-server"]["healthcheck"]["test"]
    # `reward-server probe` sends the server's own key (readiness needs one); the image has no curl.
    assert server_check == ["CMD", "reward-server", "probe", "/readyz"]
    for name in ("reward-server", "sandbox-worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["reward-server"]["depends_on"]["redis-cache"]["condition"] == "service_healthy"
    assert "redis-cli" in services["redis-cache"]["healthcheck"]["test"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]


def test_worker_scales_and_is_never_root(compose: dict[str, Any]) -> None:
    worker = compose["services"]["sandbox-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    assert not worker["user"].startswith(("0:", "root"))
    opts = worker["security_opt"]
    # The shipped profile only: no capability, and Docker's /proc masks stay (no systempaths=unconfined).
    assert sorted(opts) == ["no-new-privileges:true", "seccomp=./sandbox/seccomp.json"]
    assert "cap_add" not in worker
    assert worker["environment"]["SANDBOX_USE_NAMESPACES"] == "${SANDBOX_USE_NAMESPACES:-require}"


def test_settings_pass_through_with_defaults(compose: dict[str, Any]) -> None:
    for name in ("reward-server", "sandbox-worker"):
        env = compose["services"][name]["environment"]
        for key in ("REWARD_QUEUE_CLAIM_AFTER_S", "REWARD_QUEUE_MAX_WAIT_S"):
            assert env[key].startswith("${" + key + ":-"), (name, key)


REQUIRED_PASSWORD = "${REDIS_PASSWORD:?"


def test_redis_requires_a_password_and_is_not_published(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith(REQUIRED_PASSWORD)
    assert redis["environment"]["REDISCLI_AUTH"].startswith(REQUIRED_PASSWORD)  # redis-cli's health check
    assert "ports" not in redis
    for name in ("reward-server", "sandbox-worker"):
        url = compose["services"][name]["environment"]["REWARD_REDIS_URL"]
        assert url.startswith("redis://:" + REQUIRED_PASSWORD) and url.endswith("@redis:6379/0"), url


def test_the_server_gets_its_api_keys_from_the_environment_or_a_secret_file(compose: dict[str, Any]) -> None:
    server = compose["services"]["reward-server"]
    env = server["environment"]
    assert env["REWARD_API_KEYS"] == "${REWARD_API_KEYS:-}"
    assert env["REWARD_API_KEYS_FILE"] == "/run/secrets/reward_api_keys"
    assert env["REWARD_ALLOW_UNAUTHENTICATED"] == "${REWARD_ALLOW_UNAUTHENTICATED:-false}"
    assert server["secrets"] == ["reward_api_keys"]
    default = compose["secrets"]["reward_api_keys"]["file"]
    assert default == "${IARL_API_KEYS_FILE:-./services/no_api_keys}"
    # The default file holds no key: without REWARD_API_KEYS or a file of its own the server will not start.
    lines = (REPO / "services" / "no_api_keys").read_text().splitlines()
    assert all(not line.strip() or line.startswith("#") for line in lines)
    worker_env = compose["services"]["sandbox-worker"]["environment"]
    assert not {"REWARD_API_KEYS", "REWARD_API_KEYS_FILE"} & set(worker_env)


def test_worker_seccomp_profile_is_docker_default_plus_namespace_calls() -> None:
    profile = json.loads(WORKER_SECCOMP.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    *default_rules, added = profile["syscalls"]
    assert set(added["names"]) == NAMESPACE_CALLS and added["action"] == "SCMP_ACT_ALLOW"
    assert not {"args", "includes", "excludes"} & set(added)
    # The rest is Docker's default: these calls stay behind CAP_SYS_ADMIN there, and namespace flags to
    # clone stay refused (the runner needs unshare only).
    unconditional = set()
    for rule in default_rules:
        if rule["action"] == "SCMP_ACT_ALLOW" and not {"args", "includes", "excludes"} & set(rule):
            unconditional |= set(rule["names"])
    assert not NAMESPACE_CALLS & unconditional
    assert not {"setns", "bpf", "perf_event_open", "open_by_handle_at", "keyctl", "add_key"} & unconditional
    assert len(unconditional) > 250


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_queue_and_cache_live_in_redis_stores_with_their_own_policies(compose: dict[str, Any]) -> None:
    """The queue's Redis is durable and never evicts (a full one refuses work: 503); the cache's evicts old
    verdicts and keeps nothing on disk, so that verdicts can never fill the queue's memory."""
    services = compose["services"]
    queue, cache = services["redis"]["command"], services["redis-cache"]["command"]
    assert _option(queue, "--maxmemory-policy") == "noeviction" and _option(queue, "--appendonly") == "yes"
    assert _option(cache, "--maxmemory-policy") == "allkeys-lru"
    assert _option(cache, "--appendonly") == "no" and _option(cache, "--save") == ""
    assert "volumes" not in services["redis-cache"]
    server = services["reward-server"]["environment"]
    assert "redis-cache:6379" in server["REWARD_CACHE_REDIS_URL"]
    assert "redis:6379" in server["REWARD_REDIS_URL"]
    assert "REWARD_CACHE_REDIS_URL" not in services["sandbox-worker"]["environment"]  # workers need no cache


def test_monitoring_is_a_profile_of_its_own(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in MONITORING_SERVICES:
        assert services[name]["profiles"] == ["monitoring"], name
        for port in services[name]["ports"]:
            assert port.startswith("${IARL_MONITORING_BIND:-127.0.0.1}:"), (
                name,
                port,
            )  # not on every interface
    for name in STACK:
        assert "profiles" not in services[name], name  # `docker compose up` starts the stack without it
    assert services["sandbox-worker"]["environment"]["REWARD_METRICS_PORT"] == "9464"
    assert services["reward-server"]["environment"]["REWARD_METRICS_PORT"] == "9464"
    assert "ports" not in services["sandbox-worker"]  # scraped on the stack's network only
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "./services/monitoring/prometheus:/etc/prometheus:ro" in prometheus_mounts
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./services/monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_mounts
    assert "./services/monitoring/grafana/dashboards:/etc/grafana/dashboards:ro" in grafana_mounts


def test_prometheus_scrapes_the_server_and_every_worker_replica() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["reward-server"]["static_configs"][0]["targets"] == ["reward-server:9464"]
    (discovery,) = jobs["sandbox-worker"]["dns_sd_configs"]  # one A record per `--scale` replica
    assert discovery == {**discovery, "names": ["sandbox-worker"], "type": "A", "port": 9464}
    assert config["rule_files"] == ["alerts.yml"] and ALERTS.exists()


def test_prometheus_files_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "config", PROMETHEUS.name], cwd=PROMETHEUS.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 rules found" in done.stdout


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (ours are all `reward_*`, plus Prometheus's `up`)."""
    names = set(re.findall(r"\b(reward_[a-z0-9_]+|up)\b", expr))
    return {re.sub(r"_bucket$", "", name) for name in names}


def test_dashboard_is_provisioned_from_the_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "reward-server"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert panel["targets"] and all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])


def test_dashboard_shows_what_operations_need() -> None:
    """Queue depth, waiting time, workers alive, sandbox outcomes, math worker restarts, backend latency,
    Redis memory: each is queried by some panel (test_monitoring checks them against live processes)."""
    queried = set().union(*(metric_names(expr) for expr in dashboard_exprs()))
    needed = {
        "reward_queue_depth", "reward_queue_wait_seconds", "reward_queue_workers_alive", "up",
        "reward_sandbox_test_runs_total", "reward_sandbox_failures_total",
        "reward_math_worker_restarts_total", "reward_backend_seconds", "reward_redis_memory_used_bytes",
        "reward_redis_memory_max_bytes",
    }  # fmt: skip
    assert needed <= queried, needed - queried


def test_server_and_worker_build_one_image_that_a_prebuilt_one_replaces(compose: dict[str, Any]) -> None:
    """`image:` and `build:` together: `up` uses SERVER_IMAGE when it exists (CI, air-gapped hosts: built
    by services/build_server_image.sh, never pulled) and builds it when not; `up --build` rebuilds it."""
    services = compose["services"]
    server, worker = services["reward-server"], services["sandbox-worker"]
    assert server["image"] == worker["image"] == "${SERVER_IMAGE:-iarl/reward-server:latest}"
    assert server["build"] == worker["build"]
    build = server["build"]
    assert build["context"] == "." and (REPO / build["dockerfile"]).is_file()
    assert build["args"] == {"BASE_IMAGE": "${BASE_IMAGE:-python:3.11-slim-bookworm}"}
    for name in ("redis", "redis-cache"):
        assert "build" not in services[name]


def test_dockerfiles_copy_only_what_the_docker_context_keeps() -> None:
    """The context is the repository root cut down by .dockerignore (an allow-list): every COPY source of
    the two Dockerfiles is in it, and the offline wheelhouse folder exists in a clean clone."""
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert rules[0] == "*"
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for dockerfile in ("server.Dockerfile", "sandbox.Dockerfile"):
        text = (REPO / "services" / dockerfile).read_text()
        assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE), dockerfile
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE):
            for source in line.split()[:-1]:
                source = source.rstrip("/")
                assert (REPO / source).exists(), (dockerfile, source)
                assert any(source == path or source.startswith(path + "/") for path in kept), source
    assert (REPO / "services" / "wheelhouse" / "README.md").is_file()
