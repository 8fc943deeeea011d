"""The reward server as a user meets it: a real `reward-server serve` process over HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, ServerProcess

pytestmark = pytest.mark.slow


def grade(server: ServerProcess, body: object, timeout_s: float = 60) -> httpx.Response:
    # json.dumps escapes non-ASCII, so lone surrogates travel as the JSON escapes a client would send.
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    return httpx.post(server.url + "/v1/grade", content=content, headers=headers, timeout=timeout_s)


def math_group(gold: str, completions: list[str], group_id: str = "g") -> dict[str, object]:
    return {
        "group_id": group_id,
        "backend": "math",
        "reference": {"answer": gold},
        "completions": completions,
    }


def test_example_request_follows_the_wire_contract(server: ServerProcess) -> None:
    body = json.loads((REPO / "examples/math_request.json").read_text())
    response = grade(server, body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["request_id"] == "example-1"
    assert set(data["backends"]) == {"math"}
    assert re.fullmatch(r"0\.1\.0\+rules\.[0-9a-f]{8}", data["backends"]["math"]), data["backends"]
    first, polar = data["groups"]
    assert first["backend_version"] == polar["backend_version"] == data["backends"]["math"]
    assert first["group_id"] == "math-17"
    assert [r["status"] for r in first["results"]] == ["correct", "correct", "incorrect", "no_answer"]
    assert [r["reward"] for r in first["results"]] == [1.0, 1.0, -1.0, -1.0]
    assert [r["answer_class"] for r in first["results"]] == [0, 0, 1, None]
    assert first["results"][3]["answer"] is None
    assert first["answer_classes"][0]["count"] == 2 and first["answer_classes"][0]["correct"] is True
    assert first["answer_classes"][1] == {
        "answer": first["results"][2]["answer"],
        "count": 1,
        "correct": False,
    }
    assert [r["status"] for r in polar["results"]] == ["correct", "correct", "incorrect"]


def test_reward_values_come_from_the_request(server: ServerProcess) -> None:
    body = {
        "groups": [math_group("3", ["$\\boxed{3}$", "$\\boxed{4}$"])],
        "reward": {"correct": 1, "incorrect": 0},
    }
    results = grade(server, body).json()["groups"][0]["results"]
    assert [r["reward"] for r in results] == [1.0, 0.0]


def test_incorrect_answers_that_agree_share_a_class(server: ServerProcess) -> None:
    completions = [
        "$\\boxed{\\frac{1}{4}}$",
        "$\\boxed{0.25}$",
        "$\\boxed{7}$",
        "$\\boxed{1/4}$",
        "$\\boxed{3}$",
    ]
    results = grade(server, {"groups": [math_group("3", completions)]}).json()["groups"][0]
    classes = [r["answer_class"] for r in results["results"]]
    assert classes[0] == classes[1] == classes[3]
    assert len({classes[0], classes[2], classes[4]}) == 3
    assert results["results"][4]["status"] == "correct"
    assert [c["count"] for c in results["answer_classes"]] == [3, 1, 1]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"groups": [', "body"),
        (b'{"groups": "nope"}', "groups"),
        (b'{"groups": [{"group_id": "a", "backend": "math", "reference": {"answer": "1"}}]}', "completions"),
        (
            b'{"groups": [{"group_id": "a", "backend": "math", "reference": {}, "completions": []}]}',
            "reference",
        ),
        (
            b'{"groups": [{"group_id": "a", "backend": "math", "reference": {"answer": 1}, '
            b'"completions": []}]}',
            "answer",
        ),
        (
            b'{"groups": [{"group_id": "a", "backend": "lean", "reference": {}, "completions": []}]}',
            "backend",
        ),
        (b"[1, 2]", "body"),
        (b"\xff\xfe junk", "body"),
    ],
)
def test_bad_input_is_a_4xx_that_names_the_field(server: ServerProcess, content: bytes, field: str) -> None:
    response = httpx.post(
        server.url + "/v1/grade", content=content, headers={"content-type": "application/json"}, timeout=30
    )
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["error"] in {"invalid_request", "unknown_backend"}
    assert field in error["message"] or any(field in map(str, f["loc"]) for f in error["fields"])


def test_unknown_backend_lists_valid_backends(server: ServerProcess) -> None:
    response = grade(
        server, {"groups": [{"group_id": "a", "backend": "lean", "reference": {}, "completions": []}]}
    )
    assert response.status_code == 422
    assert "valid backends: code, math" in response.json()["message"]
    assert response.json()["fields"][0]["loc"] == ["body", "groups", 0, "backend"]


HOSTILE = [
    "",
    "x" * (1024 * 1024) + " so the answer is $\\boxed{5}$",
    "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}",
    "{" * 3000,
    "$\\boxed{\\frac{1}{0}}$",
    "$\\boxed{9^{9^{9^{9}}}}$",
    "$\\boxed{" + "7" * 5000 + "}$",
    "$\\boxed{\\ud83d\\ude00 \u202e\u0000 \ufffe}$",
    "The final answer is \ud800",
    "$\\boxed{(((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))}$",
    "$\\boxed{10^{10^{10}}!}$",
]


def test_hostile_completions_get_verdicts_not_errors(server: ServerProcess) -> None:
    started = time.monotonic()
    response = grade(server, {"groups": [math_group("5", HOSTILE)]}, timeout_s=120)
    assert response.status_code == 200, response.text[:500]
    results = response.json()["groups"][0]["results"]
    assert len(results) == len(HOSTILE)
    statuses = [r["status"] for r in results]
    # The 1 MB completion still ends with a right answer.
    assert statuses[1] == "correct", results[1]["detail"]
    assert all(s in {"incorrect", "no_answer"} for i, s in enumerate(statuses) if i != 1), statuses
    assert time.monotonic() - started < 60


def test_other_requests_are_answered_while_a_heavy_group_grinds(server: ServerProcess) -> None:
    heavy = {"groups": [math_group("5", [c + " " * i for i, c in enumerate(HOSTILE * 3)], "heavy")]}
    light = {"groups": [math_group("2", ["$\\boxed{2}$"], "light")]}
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        slow = executor.submit(grade, server, heavy, 180)
        time.sleep(0.3)
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            assert grade(server, light).json()["groups"][0]["results"][0]["status"] == "correct"
            latencies.append(time.monotonic() - started)
        assert slow.result().status_code == 200
    assert max(latencies) < 3.0, latencies


def test_large_bodies_are_accepted_and_oversized_ones_refused(server: ServerProcess) -> None:
    big = {"groups": [math_group("1", ["$\\boxed{1}$ " + "y" * (1024 * 1024)] * 20)]}
    assert grade(server, big, timeout_s=120).status_code == 200
    too_big = b'{"groups": [], "pad": "' + b"z" * (65 * 1024 * 1024) + b'"}'
    response = httpx.post(server.url + "/v1/grade", content=too_big, timeout=120)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_a_retried_request_is_served_from_the_cache(server: ServerProcess) -> None:
    body = {
        "request_id": "retry-1",
        "groups": [math_group("\\sqrt{117}", ["$\\boxed{3\\sqrt{13}}$", "$\\boxed{11}$"])],
    }
    first = grade(server, body).json()
    hits_before = _metric(server, 'reward_cache_lookups_total{outcome="hit"}')
    second = grade(server, body).json()
    assert second == first
    assert _metric(server, 'reward_cache_lookups_total{outcome="hit"}') - hits_before == 2


def test_health_readiness_metrics_backends_and_docs(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["ready"] is True and ready["checks"]["backend:math"] is True
    backends = {b["name"]: b for b in httpx.get(server.url + "/v1/backends").json()["backends"]}
    assert set(backends) == {"code", "math"}
    assert "answer" in backends["math"]["reference_schema"]["properties"]
    assert "reward_completions_total" in httpx.get(server.url + "/metrics").text
    assert httpx.get(server.url + "/docs").status_code == 200
    grade_doc = httpx.get(server.url + "/openapi.json").json()["paths"]["/v1/grade"]["post"]
    # The body is read off the event loop, not by FastAPI, and still documented.
    body_schema = grade_doc["requestBody"]["content"]["application/json"]["schema"]
    assert {"groups", "reward"} <= set(body_schema["properties"])
    assert "completions" in body_schema["properties"]["groups"]["items"]["properties"]


def _metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(re.escape(name) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0


def test_grade_file_uses_the_same_rules(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reward_server",
            "grade-file",
            str(REPO / "examples/math_groups.jsonl"),
            str(out),
        ],
        check=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "REWARD_MATH_WORKERS": "1"},
        capture_output=True,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["group_id"] for r in rows] == ["g1", "g2"]
    assert [[x["status"] for x in r["results"]] for r in rows] == [
        ["correct", "incorrect"],
        ["correct", "incorrect"],
    ]


def call_group(tests: str, **reference: object) -> bytes:
    """A call-style code group whose `tests` are raw JSON text (for literals json.dumps cannot write)."""
    extra = "".join(f', "{key}": {json.dumps(value)}' for key, value in reference.items())
    return (
        '{"group_id": "c", "backend": "code", "reference": {"fn_name": "f", "tests": '
        + tests
        + extra
        + '}, "completions": ["def f(*a):\\n    return 1\\n"]}'
    ).encode()


TESTS = ["body", "groups", 0, "reference", "tests"]
HOSTILE_BODIES = {
    # Python's json refuses an integer over 4,300 digits without saying where (it was a 400 naming no field).
    "long_integer": (
        b'{"groups": [' + call_group('[{"input": [' + "7" * 5000 + '], "output": 1}]') + b"]}",
        [*TESTS, 0, "input", 0],
    ),
    # NaN, Infinity and 1e999 were accepted and came back as a null reward with status correct.
    "nan_reward": (b'{"groups": [], "reward": {"correct": NaN}}', ["body", "reward", "correct"]),
    "overflowing_reward": (
        b'{"groups": [], "reward": {"incorrect": -1e999}}',
        ["body", "reward", "incorrect"],
    ),
    "infinite_output": (
        b'{"groups": [' + call_group('[{"input": [1], "output": Infinity}]') + b"]}",
        [*TESTS, 0, "output"],
    ),
    # A test nested 300 levels could not be hashed: a 500.
    "deep_test": (
        b'{"groups": [' + call_group('[{"input": [' + "[" * 300 + "]" * 300 + '], "output": 1}]') + b"]}",
        [*TESTS, 0, "input"],
    ),
    "too_many_tests": (
        b'{"groups": [' + call_group("[" + ", ".join(['{"input": [1], "output": 1}'] * 10_001) + "]") + b"]}",
        TESTS,
    ),
    # Limits above the caps were lowered silently.
    "time_limit_above_the_cap": (
        b'{"groups": [' + call_group('[{"input": [1], "output": 1}]', time_limit_s=1000) + b"]}",
        ["body", "groups", 0, "reference", "time_limit_s"],
    ),
    "memory_limit_above_the_cap": (
        b'{"groups": [' + call_group('[{"input": [1], "output": 1}]', memory_limit_mb=100_000) + b"]}",
        ["body", "groups", 0, "reference", "memory_limit_mb"],
    ),
    "too_many_groups": (
        json.dumps({"groups": [math_group("1", [], f"g{i}") for i in range(10_001)]}).encode(),
        ["body", "groups"],
    ),
    "nested_too_deeply_for_json": (b'{"groups": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ["body"]),
}


@pytest.mark.parametrize("size", ["small", "over_a_mebibyte"])
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_bodies_are_a_422_naming_the_field(server: ServerProcess, name: str, size: str) -> None:
    content, loc = HOSTILE_BODIES[name]
    if size == "over_a_mebibyte":  # read in a worker process instead of a thread: the same answer
        content += b" " * (1024 * 1024)
    response = httpx.post(
        server.url + "/v1/grade", content=content, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 422, response.text[:500]
    error = response.json()
    assert error["error"] == "invalid_request", error
    assert loc in [field["loc"] for field in error["fields"]], error
    assert ".".join(map(str, loc)) in error["message"], error
