"""The Redis job queue with real processes: a private redis-server, `reward-server serve` and
`reward-server worker`s, over real sockets. Faults: a worker killed mid-job, Redis restarted, no worker,
a full queue.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from reward_server.backends.code_sandbox import code_rules_version
from reward_server.cache import cache_key
from reward_server.code_grading import LimitPolicy, normalize_reference
from reward_server.grading import digest
from reward_server.settings import RewardSettings
from tests.conftest import REPO, ServerProcess, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Reads two integers, prints their sum; `SLOW` sleeps per test so that a job is still running when killed.
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
SLOW = "import time\ntime.sleep(0.6)\n" + ADD
WRONG = "a, b = map(int, input().split())\nprint(a - b)\n"
TESTS = [{"input": f"{i} {i + 1}\n", "output": f"{2 * i + 1}\n"} for i in range(5)]
REFERENCE = {"tests": TESTS, "time_limit_s": 2}


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}```\n"


class RedisServer:
    """A private redis-server with an append-only file, so it can be stopped and started again."""

    def __init__(self, directory: Path, *options: str) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.directory), *self.options],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], name: str, preexec_fn: Callable[[], object] | None = None
    ) -> None:
        self.name = name
        clean = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reward_server", "worker", "--log-level", "info"],
            env={**clean, **env, "REWARD_WORKER_NAME": name},
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.log: list[str] = []
        self.collector = threading.Thread(target=self._collect, daemon=True)
        self.collector.start()

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        self.collector.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


class Stack:
    """Redis + one server + workers, all sharing a fresh queue prefix."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer | None = None, **settings: str) -> None:
        self.redis = redis_server or RedisServer(tmp_path)
        self.env = {
            "REWARD_REDIS_URL": self.redis.url,
            "REWARD_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
            "REWARD_QUEUE_CLAIM_AFTER_S": "2",
            "REWARD_QUEUE_MAX_WAIT_S": "20",
            "REWARD_CODE_MAX_PARALLEL": "1",
            "REWARD_MATH_WORKERS": "1",
            **settings,
        }
        self.server: ServerProcess | None = None
        self.workers: list[WorkerProcess] = []

    def start_server(self) -> ServerProcess:
        self.server = ServerProcess(self.env)
        return self.server

    def start_worker(
        self, name: str, preexec_fn: Callable[[], object] | None = None, **settings: str
    ) -> WorkerProcess:
        worker = WorkerProcess({**self.env, **settings}, name, preexec_fn)
        self.workers.append(worker)
        wait_for(lambda: self.alive_workers() >= len(self.workers), 30, f"worker {name} to register")
        return worker

    def alive_workers(self) -> int:
        try:
            return int(self.redis.client().zcard(f"{self.env['REWARD_QUEUE_PREFIX']}:workers:alive"))
        except redis.ConnectionError:
            return 0

    def key(self, name: str) -> str:
        return f"{self.env['REWARD_QUEUE_PREFIX']}:{name}"

    def grade(
        self, completions: list[str], timeout: float = 120, reference: dict[str, Any] | None = None
    ) -> httpx.Response:
        group = {
            "group_id": "g",
            "backend": "code",
            "reference": reference or REFERENCE,
            "completions": completions,
        }
        return self.post([group], timeout)

    def post(self, groups: list[dict[str, Any]], timeout: float = 120) -> httpx.Response:
        assert self.server is not None
        return httpx.post(self.server.url + "/v1/grade", json={"groups": groups}, timeout=timeout)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()
        self.redis.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    yield stack
    stack.close()


def statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [result["status"] for result in response.json()["groups"][0]["results"]]


def test_workers_grade_code_like_the_embedded_server(stack: Stack) -> None:
    stack.start_server()
    stack.start_worker("w1")
    stack.start_worker("w2")
    no_python = "```cpp\nint main() {}\n```"
    completions = [fenced(ADD), fenced(WRONG), no_python, fenced("print(1/0)\n"), fenced(ADD)]
    response = stack.grade(completions)
    assert statuses(response) == ["correct", "incorrect", "no_answer", "incorrect", "correct"]
    results = response.json()["groups"][0]["results"]
    wrong = {"passed": 0, "total": 5, "first_failure": 0, "failure_kind": "wrong_answer"}
    assert results[1]["tests"] == wrong
    assert results[3]["tests"]["failure_kind"] == "runtime_error"
    # Every job was acknowledged and deleted: the stream holds nothing, nothing is pending.
    client = stack.redis.client()
    assert client.xlen(stack.key("jobs")) == 0
    assert client.xpending(stack.key("jobs"), stack.key("workers"))["pending"] == 0
    # Workers on the server's rules: their verdicts are cached under the server's version.
    version = response.json()["groups"][0]["backend_version"]
    assert version == backend_versions(stack)["code"]
    assert client.exists(verdict_key(version, completions[0]))
    # Math does not go through the queue.
    assert stack.server is not None
    math = httpx.post(
        stack.server.url + "/v1/grade",
        json={
            "groups": [
                {
                    "group_id": "m",
                    "backend": "math",
                    "reference": {"answer": "4"},
                    "completions": ["\\boxed{4}"],
                }
            ]
        },
        timeout=30,
    )
    assert math.json()["groups"][0]["results"][0]["status"] == "correct"


def backend_versions(stack: Stack) -> dict[str, str]:
    assert stack.server is not None
    listed = httpx.get(stack.server.url + "/v1/backends", timeout=10).json()["backends"]
    return {backend["name"]: backend["version"] for backend in listed}


def verdict_key(version: str, completion: str, reference: dict[str, Any] = REFERENCE) -> str:
    """The cache key of a code verdict on `completion` under the rules `version` (default limit policy)."""
    problem = normalize_reference(reference, LimitPolicy.from_settings(RewardSettings()), {})
    ref_hash = hashlib.sha256(problem.model_dump_json().encode()).hexdigest()
    return cache_key("code", version, ref_hash, digest(completion))


def test_a_worker_on_other_rules_is_served_but_never_cached_as_the_servers(stack: Stack) -> None:
    """A rolling upgrade: a worker whose rules differ (here its settings) grades under its own version."""
    stack.start_server()
    worker = stack.start_worker("w1", REWARD_CODE_STOP_ON_FIRST_FAILURE="false")
    completions = [fenced(ADD), fenced(WRONG)]
    response = stack.grade(completions)
    assert statuses(response) == ["correct", "incorrect"]
    ours = backend_versions(stack)["code"]
    theirs = code_rules_version(RewardSettings(code_stop_on_first_failure=False))
    assert response.json()["groups"][0]["backend_version"] == ours != theirs
    client = stack.redis.client()
    for completion in completions:
        assert client.exists(verdict_key(theirs, completion))
        assert not client.exists(verdict_key(ours, completion))
    assert any(theirs in line for line in worker.log), "".join(worker.log)


def test_a_job_of_a_worker_killed_mid_run_completes_on_another(stack: Stack) -> None:
    stack.start_server()
    first = stack.start_worker("w1")
    second = stack.start_worker("w2")
    completions = [fenced(f"# solution {i}\n{SLOW}") for i in range(3)]  # distinct programs: 3 jobs
    result: dict[str, Any] = {}
    request = threading.Thread(target=lambda: result.setdefault("response", stack.grade(completions)))
    request.start()
    client = stack.redis.client()

    def running_on(worker: WorkerProcess) -> bool:
        pending = client.xpending_range(stack.key("jobs"), stack.key("workers"), "-", "+", 10)
        return any(entry["consumer"] == worker.name for entry in pending)

    wait_for(lambda: running_on(first), 30, "the first worker to run a job")
    os.kill(first.process.pid, signal.SIGKILL)
    request.join(timeout=120)
    assert not request.is_alive()
    # Every completion got exactly one verdict, the right one, although a worker died holding a job.
    assert statuses(result["response"]) == ["correct"] * 3
    assert client.xlen(stack.key("jobs")) == 0
    assert client.xpending(stack.key("jobs"), stack.key("workers"))["pending"] == 0
    assert any("took over job" in line for line in second.log), "".join(second.log)


def test_no_worker_means_error_at_the_deadline_never_incorrect(tmp_path: Path) -> None:
    stack = Stack(tmp_path, REWARD_QUEUE_MAX_WAIT_S="3")
    try:
        stack.start_server()
        started = time.monotonic()
        response = stack.grade([fenced(ADD), fenced(WRONG)])
        elapsed = time.monotonic() - started
        assert statuses(response) == ["error", "error"]
        detail = response.json()["groups"][0]["results"][0]["detail"]
        assert "no sandbox worker answered" in detail and "0 worker(s)" in detail
        # With no worker alive, waiting jobs end after REWARD_QUEUE_MAX_WAIT_S (3 s), not before; the run
        # budget (5 tests x 2 s + 10 s) is not spent waiting, since no run ever started.
        assert 3 <= elapsed < 20
        # A worker that arrives later finds nothing to run: the server took its jobs off the stream.
        worker = stack.start_worker("late")
        client = stack.redis.client()
        wait_for(lambda: client.xlen(stack.key("jobs")) == 0, 30, "the late worker to drop expired jobs")
        assert worker.process.poll() is None
    finally:
        stack.close()


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path) -> None:
    stack = Stack(tmp_path, REWARD_QUEUE_MAX_DEPTH="2", REWARD_QUEUE_RETRY_AFTER_S="7")
    try:
        stack.start_server()
        response = stack.grade([fenced(f"# solution {i}\n{ADD}") for i in range(3)])
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        body = response.json()
        assert body["error"] == "queue_full" and "REWARD_QUEUE_MAX_DEPTH" in body["message"]
        assert stack.redis.client().xlen(stack.key("jobs")) == 0  # nothing was enqueued
    finally:
        stack.close()


def test_redis_restart_fails_cleanly_then_recovers_without_restarts(stack: Stack) -> None:
    server = stack.start_server()
    worker = stack.start_worker("w1")
    assert statuses(stack.grade([fenced(ADD)])) == ["correct"]
    stack.redis.stop()
    during = stack.grade([fenced(f"# during\n{ADD}")], timeout=60)
    assert during.status_code == 503, during.text
    assert during.json()["error"] == "queue_unavailable" and "retry-after" in during.headers
    assert httpx.get(server.url + "/readyz").status_code == 503
    stack.redis.start()
    wait_for(lambda: httpx.get(server.url + "/readyz").status_code == 200, 30, "the server to be ready again")
    after = stack.grade([fenced(f"# after\n{ADD}"), fenced(f"# after\n{WRONG}")], timeout=60)
    assert statuses(after) == ["correct", "incorrect"]
    assert server.process.poll() is None and worker.process.poll() is None


def test_worker_finishes_its_jobs_on_sigterm(stack: Stack) -> None:
    stack.start_server()
    worker = stack.start_worker("w1")
    result: dict[str, Any] = {}
    request = threading.Thread(target=lambda: result.setdefault("response", stack.grade([fenced(SLOW)])))
    request.start()
    client = stack.redis.client()
    wait_for(lambda: client.xpending(stack.key("jobs"), stack.key("workers"))["pending"] == 1, 30, "a job")
    worker.process.send_signal(signal.SIGTERM)
    request.join(timeout=60)
    assert statuses(result["response"]) == ["correct"]
    assert worker.process.wait(timeout=20) == 0
    assert stack.alive_workers() == 0


def test_a_burst_of_groups_waits_for_redis_connections_instead_of_failing(stack: Stack) -> None:
    """150 groups at once: more concurrent Redis commands than the client pool's connections (64)."""
    server = stack.start_server()
    stack.start_worker("w1")
    groups = [
        {
            "group_id": str(i),
            "backend": "code",
            "reference": REFERENCE,
            "completions": [fenced(f"# {i}\n{ADD}")],
        }
        for i in range(150)
    ]
    response = httpx.post(server.url + "/v1/grade", json={"groups": groups}, timeout=300)
    assert response.status_code == 200, response.text
    assert [g["results"][0]["status"] for g in response.json()["groups"]] == ["correct"] * 150


# ---- The queue's clock and fairness (issue 9): waiting for a worker is not the program's time. ------------

ONE_TEST = {"tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit_s": 3}


def test_a_small_request_is_not_starved_by_a_big_batch(tmp_path: Path) -> None:
    """One request of 30 slow programs (in 10 groups), then a request of 3 fast ones: the small one gets its
    share of the worker at once, instead of queueing behind the whole batch (FIFO)."""
    stack = Stack(tmp_path, REWARD_CODE_MAX_PARALLEL="2")
    try:
        stack.start_server()
        stack.start_worker("w1")
        slow = "import time\ntime.sleep(1)\n" + ADD
        big_groups = [
            {"group_id": f"big-{g}", "backend": "code", "reference": ONE_TEST,
             "completions": [fenced(f"# big {g}-{i}\n{slow}") for i in range(3)]}
            for g in range(10)
        ]  # fmt: skip
        result: dict[str, Any] = {}

        def big_request() -> None:
            started = time.monotonic()
            result["big"] = stack.post(big_groups, timeout=300)
            result["big_s"] = time.monotonic() - started

        thread = threading.Thread(target=big_request)
        thread.start()
        client = stack.redis.client()
        wait_for(lambda: client.xlen(stack.key("jobs")) > 0, 30, "the big batch to reach the queue")
        time.sleep(1)  # the worker is busy with the batch
        started = time.monotonic()
        small = stack.grade([fenced(f"# small {i}\n{ADD}") for i in range(3)], reference=ONE_TEST)
        small_s = time.monotonic() - started
        thread.join(timeout=300)
        assert statuses(small) == ["correct"] * 3
        big = result["big"]
        assert big.status_code == 200, big.text
        assert {r["status"] for g in big.json()["groups"] for r in g["results"]} == {"correct"}
        # FIFO made the small request wait for (nearly) the whole batch; a fair queue serves it within a few
        # slow jobs. Relative, not absolute: both stretch alike on a loaded machine.
        assert small_s < result["big_s"] / 2, (small_s, result["big_s"])
    finally:
        stack.close()


def test_slow_programs_queued_past_the_old_wait_get_their_own_verdicts(tmp_path: Path) -> None:
    """14 programs that time out, one worker slot, REWARD_QUEUE_MAX_WAIT_S=1: the last ones wait ~15 s for
    the worker (more than their run budget plus the wait allowed before); each still gets `timeout`."""
    # (A worker counts as alive for REWARD_QUEUE_CLAIM_AFTER_S after its last heartbeat: 6 s leaves room for a
    # worker delayed by a loaded machine; no take-over happens here.)
    stack = Stack(tmp_path, REWARD_QUEUE_MAX_WAIT_S="1", REWARD_QUEUE_CLAIM_AFTER_S="6")
    try:
        stack.start_server()
        stack.start_worker("w1")
        endless = "import time\ntime.sleep(60)\n" + ADD
        response = stack.grade(
            [fenced(f"# {i}\n{endless}") for i in range(14)],
            reference={"tests": [{"input": "1 2\n", "output": "3\n"}], "time_limit_s": 1},
            timeout=300,
        )
        results = response.json()["groups"][0]["results"]
        assert statuses(response) == ["incorrect"] * 14, [r["detail"] for r in results]
        assert {r["tests"]["failure_kind"] for r in results} == {"timeout"}
    finally:
        stack.close()


def test_a_request_refused_with_429_left_nothing_in_the_queue(tmp_path: Path) -> None:
    """Back-pressure is decided for the whole request before any of it is enqueued (three groups of two
    programs, a limit of four jobs): no group's jobs are left behind to run for a client told to retry."""
    stack = Stack(tmp_path, REWARD_QUEUE_MAX_DEPTH="4", REWARD_QUEUE_RETRY_AFTER_S="3")
    try:
        stack.start_server()
        groups = [
            {"group_id": f"g{g}", "backend": "code", "reference": REFERENCE,
             "completions": [fenced(f"# {g}-{i}\n{ADD}") for i in range(2)]}
            for g in range(3)
        ]  # fmt: skip
        response = stack.post(groups)
        assert response.status_code == 429, response.text
        assert response.headers["retry-after"] == "3"
        time.sleep(1)
        assert stack.redis.client().xlen(stack.key("jobs")) == 0
    finally:
        stack.close()


def test_jobs_redis_lost_are_enqueued_again(stack: Stack) -> None:
    """Redis loses everything (FLUSHALL: a restart without its append-only file) while jobs wait and one runs:
    the server enqueues the lost ones again and every completion still gets its own verdict."""
    stack.start_server()
    stack.start_worker("w1")
    slow = "import time\ntime.sleep(0.5)\n" + ADD
    result: dict[str, Any] = {}
    completions = [fenced(f"# {i}\n{slow}") for i in range(4)]
    request = threading.Thread(
        target=lambda: result.setdefault("response", stack.grade(completions, reference=ONE_TEST))
    )
    request.start()
    client = stack.redis.client()
    wait_for(
        lambda: client.xpending(stack.key("jobs"), stack.key("workers"))["pending"] == 1, 30, "a job to run"
    )
    client.flushall()
    request.join(timeout=120)
    assert not request.is_alive()
    assert statuses(result["response"]) == ["correct"] * 4
