"""The event loop never waits on a request: /healthz answers within 1 s while any single heavy request is
being read, validated, refused or graded by a real `reward-server serve` process.

Each case sends one heavy request (a 40 MB completion, a reference with a million tests, a reference at
the caps, 60 MB of dense JSON, a 20 MB math completion, 10,000 groups) while a thread polls /healthz;
every poll must answer within 1 s. The sizes keep the whole module to a few tens of seconds on a loaded
2-core machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

HEALTHZ_BUDGET_S = 1.0
MB = 1024 * 1024


@pytest.fixture(scope="module")
def heavy_server() -> Iterator[ServerProcess]:
    process = ServerProcess(
        {
            "REWARD_MATH_WORKERS": "2",
            "REWARD_MATH_TIMEOUT_S": "3",
            "REWARD_CODE_MAX_PARALLEL": "1",
            "SANDBOX_SLOTS": "1",
        }
    )
    yield process
    process.stop()


@dataclass
class Poller:
    """Polls /healthz back to back from a thread; `latencies` are the seconds each poll took."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(self.url + "/healthz")
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


def while_polling(server: ServerProcess, send: Callable[[], httpx.Response]) -> tuple[httpx.Response, Poller]:
    poller = Poller(server.url)
    thread = threading.Thread(target=poller.run)
    thread.start()
    try:
        response = send()
    finally:
        poller.stop()
        thread.join()
    return response, poller


def post(server: ServerProcess, content: bytes) -> Callable[[], httpx.Response]:
    def send() -> httpx.Response:
        return httpx.post(
            server.url + "/v1/grade",
            content=content,
            headers={"content-type": "application/json"},
            timeout=300,
        )

    return send


def body(groups: list[dict[str, object]]) -> bytes:
    return json.dumps({"groups": groups}).encode()


def code_group(completions: list[str], tests: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {
        "group_id": "code",
        "backend": "code",
        "reference": {"tests": tests or [{"input": "1\n", "output": "1\n"}], "time_limit_s": 5},
        "completions": completions,
    }


def prose_and_small_program() -> bytes:
    """40 MB of prose lines, then a small program: extraction walks 20 million lines."""
    return body([code_group(["x\n" * (20 * MB) + "```python\nprint(input())\n```\n"])])


def forty_mb_program() -> bytes:
    """A 40 MB program (one long string literal, cheap to compile) that prints its input."""
    return body([code_group(["```python\nx = '" + "a" * (40 * MB) + "'\nprint(input())\n```"])])


def million_tests() -> bytes:
    """A reference with about a million tests, within the body limit."""
    tests = b",".join([b'{"input":"1\\n","output":"1\\n"}'] * 1_000_000)
    return (
        b'{"groups":[{"group_id":"many","backend":"code","reference":{"tests":['
        + tests
        + b']},"completions":["print(1)"]}]}'
    )


def at_the_caps() -> bytes:
    """10,000 tests of about 6 KB each (60 MB of tests); the program fails the first, so it stops there."""
    line = "7 " * 3000 + "\n"
    tests = [{"input": line, "output": "1\n"} for _ in range(10_000)]
    return body([code_group(["```python\nprint(2)\n```"], tests)])


def dense_json() -> bytes:
    """60 MB of empty objects: the densest JSON there is (about 20 million values) in one reference."""
    values = b",".join([b"{}"] * (20 * MB))
    return (
        b'{"groups":[{"group_id":"dense","backend":"code","reference":{"fn_name":"f","tests":'
        b'[{"input":[' + values + b'],"output":1}]},"completions":["def f(*a): return 1"]}]}'
    )


def twenty_mb_math() -> bytes:
    group = {
        "group_id": "math",
        "backend": "math",
        "reference": {"answer": "1"},
        "completions": ["$\\boxed{1}$", "\\boxed 1 " * (20 * MB // 9), "$\\boxed{2}$"],
    }
    return body([group])


def many_groups() -> bytes:
    """10,000 groups of 10 math completions: 100,000 results, the most one request may ask for."""
    groups = [
        {
            "group_id": f"g{index}",
            "backend": "math",
            "reference": {"answer": "1"},
            "completions": [f"$\\boxed{{{answer % 5}}}$" for answer in range(10)],
        }
        for index in range(10_000)
    ]
    return body(groups)


CASES: dict[str, tuple[Callable[[], bytes], Callable[[httpx.Response], None]]] = {}


def case(build: Callable[[], bytes]) -> Callable[[Callable[[httpx.Response], None]], None]:
    def register(check: Callable[[httpx.Response], None]) -> None:
        CASES[build.__name__] = (build, check)

    return register


@case(prose_and_small_program)
def _graded_correct(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    assert response.json()["groups"][0]["results"][0]["status"] == "correct", response.text[:500]


@case(forty_mb_program)
def _graded(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    assert response.json()["groups"][0]["results"][0]["status"] in {"correct", "incorrect"}


@case(million_tests)
def _refused_naming_tests(response: httpx.Response) -> None:
    assert response.status_code in (413, 422), response.text[:500]
    locs = [f["loc"] for f in response.json()["fields"]]
    assert ["body", "groups", 0, "reference", "tests"] in locs, locs


@case(at_the_caps)
def _stops_at_the_first_failure(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    (result,) = response.json()["groups"][0]["results"]
    assert result["status"] == "incorrect" and result["tests"]["total"] == 10_000, result


@case(dense_json)
def _refused_naming_the_test(response: httpx.Response) -> None:
    assert response.status_code in (413, 422), response.text[:500]
    locs = [f["loc"][:6] for f in response.json()["fields"]]
    assert ["body", "groups", 0, "reference", "tests", 0] in locs, locs


@case(twenty_mb_math)
def _neighbours_graded(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    statuses = [r["status"] for r in response.json()["groups"][0]["results"]]
    assert statuses[0] == "correct" and statuses[2] == "incorrect", statuses
    assert statuses[1] != "error", response.text[:500]


@case(many_groups)
def _all_graded(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    groups = response.json()["groups"]
    assert len(groups) == 10_000
    assert [r["status"] for r in groups[-1]["results"]][:3] == ["incorrect", "correct", "incorrect"]


@pytest.mark.parametrize("name", list(CASES))
def test_healthz_answers_within_a_second_during_a_heavy_request(
    heavy_server: ServerProcess, name: str
) -> None:
    build, check = CASES[name]
    content = build()
    response, poller = while_polling(heavy_server, post(heavy_server, content))
    worst = max(poller.latencies, default=0.0)
    print(f"{name}: {len(content) / MB:.0f} MB body, {len(poller.latencies)} polls, worst {worst:.3f} s")
    check(response)
    assert not poller.failures, poller.failures
    assert len(poller.latencies) >= 3, "the request ended before /healthz was polled"
    assert worst < HEALTHZ_BUDGET_S, f"/healthz took {worst:.2f} s during {name}"
