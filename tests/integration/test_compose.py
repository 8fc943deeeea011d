"""The deployed stack (docker-compose.yml) over real HTTP: smoke test, worker isolation, and faults.

Needs a Docker engine, `docker-compose` (v1) or `docker compose` (v2), and the images built beforehand by
`sudo bash services/build_images.sh` (the tests build nothing). Images: IARL_SERVER_IMAGE (default
iarl/reward-server:latest) and IARL_REDIS_IMAGE (default iarl/redis:bookworm).

    python -m pytest -m compose tests/integration/test_compose.py

One stack (its own compose project, a free localhost port, two workers, short queue deadlines) serves the
whole module and is removed with its volume at the end (`down -v`). The workers run with the shipped
seccomp profile only (v1 and v2 alike) and SANDBOX_USE_NAMESPACES=require, so a worker that joins the queue
has its sandbox's namespaces (with no /proc inside, under Docker's /proc masks); what a solution sees under
each set of container options is checked with `docker run` by test_worker_sandbox_isolation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.docker, pytest.mark.compose, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SERVER_IMAGE = os.environ.get("IARL_SERVER_IMAGE", "iarl/reward-server:latest")
REDIS_IMAGE = os.environ.get("IARL_REDIS_IMAGE", "iarl/redis:bookworm")
CLAIM_AFTER_S = 3
MAX_WAIT_S = 5
# The stack's two secrets (docs/deploy.md, "Security"): Redis's password and the server's API key.
REDIS_PASSWORD = uuid.uuid4().hex
API_KEY = f"compose-test-{uuid.uuid4().hex}"
AUTH = {"authorization": f"Bearer {API_KEY}"}

ADD = "```python\nprint(sum(map(int, input().split())))\n```"
SUB = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
SLOW_ADD = "```python\nimport time\ntime.sleep(4)\nprint(sum(map(int, input().split())))\n```"
MATH_GROUP = {
    "group_id": "math-1",
    "backend": "math",
    "reference": {"answer": "\\frac{1}{2}"},
    "completions": ["so the answer is $\\boxed{0.5}$", "The final answer is 3", "no idea"],
}


def code_group(completions: list[str], group_id: str = "code-1", time_limit_s: float = 2) -> dict[str, Any]:
    """A group whose completions are new to the result cache (a marker comment), so the workers run them."""
    marker = f"\n# {uuid.uuid4().hex}\n```"
    return {
        "group_id": group_id,
        "backend": "code",
        "reference": {"tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit_s": time_limit_s},
        "completions": [c.removesuffix("\n```") + marker for c in completions],
    }


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return None


def _skip_reason() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine answers (docker info failed)"
    if _compose_command() is None:
        return "neither docker-compose (v1) nor the docker compose plugin (v2) is installed"
    for image in (SERVER_IMAGE, REDIS_IMAGE):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            return f"image {image} is missing: run `sudo bash services/build_images.sh` first"
    return None


@dataclass
class Stack:
    compose: list[str]
    project: str
    env: dict[str, str]
    url: str
    v1: bool
    started: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        command = [*self.compose, "-p", self.project, *args]
        done = subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def containers(self, service: str) -> list[str]:
        out = self.run("ps", "-q", service).stdout
        return [line for line in out.split() if line]

    def inspect(self, container: str, template: str) -> str:
        done = subprocess.run(
            ["docker", "inspect", "-f", template, container], capture_output=True, text=True
        )
        return done.stdout.strip()

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}/readyz", headers=AUTH, timeout=3)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise AssertionError(f"stack not ready after {timeout_s} s: {last}\n{self.logs()}")

    def wait_workers(self, count: int, timeout_s: float = 60) -> None:
        """Until `count` worker containers run and each has joined the consumer group."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            workers = self.containers("sandbox-worker")
            running = [c for c in workers if self.inspect(c, "{{.State.Running}}") == "true"]
            hostnames = [self.inspect(c, "{{.Config.Hostname}}") for c in running]
            names = self.consumers()
            if len(running) >= count and all(any(n.startswith(h + "-") for n in names) for h in hostnames):
                return
            time.sleep(0.5)
        raise AssertionError(f"fewer than {count} workers joined the queue\n{self.logs()}")

    def redis_cli(self, *args: str) -> str:
        (redis,) = self.containers("redis")
        done = subprocess.run(["docker", "exec", redis, "redis-cli", *args], capture_output=True, text=True)
        return done.stdout

    def consumers(self) -> list[str]:
        """Workers alive in the last 10 s (`<hostname>-<pid>`, from the queue's heartbeat set)."""
        out = self.redis_cli("ZRANGE", "iarl:workers:alive", "0", "-1", "WITHSCORES").split()
        now = float(self.redis_cli("TIME").split()[0])
        return [name for name, seen in zip(out[::2], out[1::2], strict=True) if now - float(seen) < 10]

    def grade(self, groups: list[dict[str, Any]], timeout_s: float = 60) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/grade", json={"groups": groups}, headers=AUTH, timeout=timeout_s)

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "40", check=False).stdout[-6000:]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    compose = _compose_command()
    assert compose is not None
    v1 = compose == ["docker-compose"]
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REWARD_", "SANDBOX_", "IARL_"))},
        "SERVER_IMAGE": SERVER_IMAGE,
        "REDIS_IMAGE": REDIS_IMAGE,
        "IARL_HTTP_BIND": "127.0.0.1",
        "IARL_HTTP_PORT": str(port),
        "REWARD_QUEUE_CLAIM_AFTER_S": str(CLAIM_AFTER_S),
        "REWARD_QUEUE_MAX_WAIT_S": str(MAX_WAIT_S),
        "REWARD_WORKER_SHUTDOWN_GRACE_S": "2",
        "REWARD_MATH_WORKERS": "1",
        "IARL_WORKER_MEM_LIMIT": "1g",
        "IARL_WORKER_CPUS": "1",
        # This project's CI runs dockerd without CAP_SYS_RESOURCE, which a negative score needs.
        "IARL_SERVER_OOM_SCORE_ADJ": "0",
        "IARL_WORKER_OOM_SCORE_ADJ": "0",
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "REWARD_API_KEYS": API_KEY,
    }
    project = f"iarltest{uuid.uuid4().hex[:8]}"
    stack = Stack(compose, project, env, f"http://127.0.0.1:{port}", v1)
    stack.run("config", "-q")
    try:
        stack.run("up", "-d", "--scale", "sandbox-worker=2", timeout=300)
        stack.wait_ready()
        stack.wait_workers(2)
        for service in ("reward-server", "sandbox-worker"):
            for container in stack.containers(service):
                stack.started[container] = stack.inspect(container, "{{.State.StartedAt}}")
        yield stack
    finally:
        stack.run("down", "-v", "--timeout", "5", check=False)


def test_compose_file_is_valid_for_the_installed_compose() -> None:
    reason = _skip_reason()
    if reason and "image" not in reason:
        pytest.skip(reason)
    compose = _compose_command()
    assert compose is not None
    env = {**os.environ, "REDIS_PASSWORD": REDIS_PASSWORD}
    done = subprocess.run([*compose, "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Without a Redis password the stack does not even configure.
    env.pop("REDIS_PASSWORD")
    done = subprocess.run([*compose, "config", "-q"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "set REDIS_PASSWORD" in done.stderr, done.stderr


def test_the_stack_needs_its_secrets(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
    for path in ("/readyz", "/v1/backends", "/metrics"):
        response = httpx.get(f"{stack.url}{path}", timeout=5)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    wrong = {"authorization": "Bearer not-the-key-0123456789"}
    response = httpx.post(f"{stack.url}/v1/grade", json={"groups": [MATH_GROUP]}, headers=wrong, timeout=30)
    assert response.status_code == 401
    # Redis: a password, and no published port.
    (redis,) = stack.containers("redis")
    done = subprocess.run(
        ["docker", "exec", "-e", "REDISCLI_AUTH=", redis, "redis-cli", "ping"], capture_output=True, text=True
    )
    assert "NOAUTH" in done.stdout + done.stderr, done
    assert stack.redis_cli("ping").strip() == "PONG"
    assert subprocess.run(["docker", "port", redis], capture_output=True, text=True).stdout.strip() == ""


def test_grades_a_math_group(stack: Stack) -> None:
    response = stack.grade([MATH_GROUP])
    assert response.status_code == 200, response.text
    (group,) = response.json()["groups"]
    assert [r["status"] for r in group["results"]] == ["correct", "incorrect", "no_answer"]
    assert [r["reward"] for r in group["results"]] == [1.0, -1.0, -1.0]


def test_grades_a_code_group_on_the_workers(stack: Stack) -> None:
    response = stack.grade([code_group([ADD, SUB, ADD.replace("sum", "max")])])
    assert response.status_code == 200, response.text
    (group,) = response.json()["groups"]
    assert [r["status"] for r in group["results"]] == ["correct", "incorrect", "incorrect"], group


def test_every_worker_replica_serves_metrics_under_the_service_name(stack: Stack) -> None:
    """What the monitoring profile's Prometheus relies on (dns_sd_configs on `sandbox-worker`, port 9464):
    compose's DNS answers the service name with every replica, and each serves its metrics there."""
    (server,) = stack.containers("reward-server")
    probe = (
        "import json, socket, urllib.request\n"
        "found = socket.getaddrinfo('sandbox-worker', 9464, proto=socket.IPPROTO_TCP)\n"
        "ips = sorted({address[4][0] for address in found})\n"
        "get = lambda ip: urllib.request.urlopen(f'http://{ip}:9464/metrics', timeout=5).read().decode()\n"
        "print(json.dumps({ip: 'reward_worker_slots' in get(ip) for ip in ips}))"
    )
    done = subprocess.run(["docker", "exec", server, "python", "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    replicas = json.loads(done.stdout)
    assert len(replicas) == len(stack.containers("sandbox-worker")) == 2, replicas
    assert all(replicas.values()), replicas


def test_worker_sandbox_isolation() -> None:
    """The least privilege of docs/deploy.md: the shipped seccomp profile alone gives the namespaces."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    base = [
        "docker",
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--user",
        "10001:10001",
    ]
    base += ["--security-opt", "no-new-privileges:true", "--entrypoint", "python"]
    default = _isolation(base)
    assert default["level"] == "none", default
    assert default["nested_userns"] == "refused", default
    assert "eth0" in default["interfaces"] and len(default["pids"]) > 1  # the network, the worker
    profile = str(REPO / "sandbox" / "seccomp.json")
    shipped = _isolation([*base, "--security-opt", f"seccomp={profile}"])
    assert shipped["level"] == "userns-unprivileged", shipped
    assert shipped["namespaces"] == ["user", "pid", "net", "mount", "ipc", "uts"], shipped
    # Docker's /proc masks make the kernel refuse a fresh proc: the sandbox has none inside, and shows no
    # outer one either.
    assert not shipped["proc"] and "fresh proc mount refused" in shipped["summary"], shipped
    assert shipped["proc_entries"] == [], shipped
    assert shipped["interfaces"] == ["lo"], shipped  # no route to Redis or anything else
    assert shipped["connect"] != "connected", shipped
    assert shipped["pids"] == [1], shipped  # only its session's init: the worker is out of sight and reach
    assert shipped["nested_userns"] == "refused", shipped  # the widened profile is not the solution's
    assert shipped["ordinary"] == [2, 20000, 0], shipped  # threads, deep recursion, a subprocess
    unmasked = _isolation(
        [*base, "--security-opt", f"seccomp={profile}", "--security-opt", "systempaths=unconfined"]
    )
    assert unmasked["level"] == "userns-unprivileged" and unmasked["proc"], unmasked  # (compose v2 only)
    assert unmasked["interfaces"] == ["lo"] and unmasked["nested_userns"] == "refused", unmasked


ISOLATION_PROBE = r"""
import asyncio, json
from sandbox.runners.process import ProcessSandbox
from sandbox.schemas import Limits, Program, TestInput
from sandbox.settings import SandboxSettings

SOLUTION = '''
import ctypes, json, os, socket, subprocess, sys, threading
def alive(pid):
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True
def connect(address):
    try:
        socket.create_connection(address, timeout=1).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
gateway = "172.17.0.1"  # Docker's default bridge: the host, as the worker's network reaches it
def ordinary():
    # (At the rlimits-only level RLIMIT_NPROC counts uid 10001 across the host: other workers' processes.)
    try:
        threads = []
        for _ in range(2):
            threads.append(threading.Thread(target=lambda: None))
            threads[-1].start()
        sys.setrecursionlimit(100000)
        deep = lambda n: 0 if n == 0 else 1 + deep(n - 1)
        return [len(threads), deep(20000), subprocess.run([sys.executable, "-c", "pass"]).returncode]
    except Exception as exc:
        return repr(exc)
libc = ctypes.CDLL(None, use_errno=True)
nested = "allowed" if libc.unshare(0x10000000) == 0 else "refused"
print(json.dumps({"interfaces": sorted(name for _, name in socket.if_nameindex()),
                  "proc_entries": sorted(os.listdir("/proc"))[:3], "connect": connect((gateway, 9)),
                  "pids": [p for p in range(1, 4096) if p != os.getpid() and alive(p)],
                  "ordinary": ordinary(), "nested_userns": nested}))
'''

async def main():
    sandbox = ProcessSandbox(SandboxSettings(slots=1, use_namespaces="auto"))
    await sandbox.start()
    async with sandbox.session(Program(code=SOLUTION), Limits(wall_time_s=30)) as session:
        run = await session.run(TestInput())
    await sandbox.close()
    info = sandbox.isolation_info
    print(json.dumps({"level": info.get("level"), "namespaces": info.get("namespaces"),
                      "proc": info.get("proc"), "summary": sandbox.isolation, "outcome": run.outcome,
                      **json.loads(run.stdout or "{}"), "stderr": run.stderr_tail[-300:]}))

asyncio.run(main())
"""


def _isolation(docker_run: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [*docker_run, SERVER_IMAGE, "-c", ISOLATION_PROBE], capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ---- Faults (issue 5): each leaves the stack as it found it (two workers, Redis up). -----------------------


def _assert_not_restarted(stack: Stack) -> None:
    for container, started in stack.started.items():
        if stack.inspect(container, "{{.State.Running}}") == "true":
            assert stack.inspect(container, "{{.State.StartedAt}}") == started, f"{container} was restarted"


def test_killed_worker_job_completes_on_another(stack: Stack) -> None:
    """kill -9 the worker running a job: another claims it after CLAIM_AFTER_S; one verdict per completion."""
    result: dict[str, httpx.Response] = {}
    group = code_group([SLOW_ADD], group_id=f"kill-{uuid.uuid4().hex[:6]}", time_limit_s=10)
    thread = threading.Thread(target=lambda: result.setdefault("r", stack.grade([group], timeout_s=90)))
    thread.start()
    holder = None
    deadline = time.monotonic() + 20
    while holder is None and time.monotonic() < deadline:
        holder = _job_holder(stack)
        time.sleep(0.2)
    assert holder is not None, "no worker took the job"
    subprocess.run(["docker", "kill", "-s", "KILL", holder], check=True, capture_output=True)
    thread.join(90)
    response = result["r"]
    assert response.status_code == 200, response.text
    (graded,) = response.json()["groups"]
    assert [r["status"] for r in graded["results"]] == ["correct"], graded
    # (`docker kill` counts as a manual stop: the restart policy leaves it down.) Two workers again.
    subprocess.run(["docker", "start", holder], check=True, capture_output=True)
    stack.started[holder] = stack.inspect(holder, "{{.State.StartedAt}}")
    stack.wait_workers(2)


def _job_holder(stack: Stack) -> str | None:
    """The container whose worker holds a pending job (consumer names are `<hostname>-<pid>`)."""
    out = stack.redis_cli("XPENDING", "iarl:jobs", "iarl:workers", "-", "+", "10").split()
    for container in stack.containers("sandbox-worker"):
        hostname = stack.inspect(container, "{{.Config.Hostname}}")
        if any(item.startswith(hostname + "-") for item in out):
            return container
    return None


def test_redis_restart_fails_cleanly_then_recovers(stack: Stack) -> None:
    stack.run("stop", "-t", "2", "redis")
    try:
        response = stack.grade([code_group([ADD], group_id=f"outage-{uuid.uuid4().hex[:6]}")], timeout_s=60)
        if response.status_code == 200:
            statuses = {r["status"] for g in response.json()["groups"] for r in g["results"]}
            assert statuses == {"error"}, response.text
        else:
            assert response.status_code == 503, response.text
    finally:
        stack.run("start", "redis")
    deadline = time.monotonic() + 60
    while True:
        response = stack.grade([code_group([ADD], group_id=f"after-{uuid.uuid4().hex[:6]}")], timeout_s=60)
        statuses = (
            [r["status"] for g in response.json()["groups"] for r in g["results"]]
            if response.is_success
            else []
        )
        if statuses == ["correct"]:
            break
        assert time.monotonic() < deadline, f"no recovery after Redis came back: {response.text}"
        time.sleep(1)
    _assert_not_restarted(stack)


def test_no_worker_means_error_at_the_deadline_never_incorrect(stack: Stack) -> None:
    stack.run("stop", "-t", "5", "sandbox-worker")
    try:
        started = time.monotonic()
        response = stack.grade(
            [code_group([ADD, SUB], group_id=f"noworker-{uuid.uuid4().hex[:6]}")], timeout_s=90
        )
        elapsed = time.monotonic() - started
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            results = [r for g in response.json()["groups"] for r in g["results"]]
            assert [r["status"] for r in results] == ["error", "error"], response.text
            assert all(r["reward"] is None for r in results)
        assert elapsed < MAX_WAIT_S + 30, f"took {elapsed:.0f} s, past the queue deadline"
    finally:
        stack.run("start", "sandbox-worker")
        for container in stack.containers("sandbox-worker"):
            stack.started[container] = stack.inspect(container, "{{.State.StartedAt}}")
    stack.wait_workers(2)
