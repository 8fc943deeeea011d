"""`/v1/grade` and the service routes in-process (conftest.py): what the request/response logic answers.

The real math backend grades (2 workers, 3 s per answer, as the real-server tests run it); the code backend
runs nothing (`PassingExecutor`): every code body here is refused before it would run. What needs a socket
or a server process (large bodies over the wire, /healthz during heavy requests, the CLI) is in
tests/integration/test_server_http.py.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from typing import Any

import httpx
import pytest

from reward_server.api.request_body import INLINE_MAX_BYTES
from tests.conftest import REPO
from tests.grade_bodies import HOSTILE_COMPLETIONS, JSON, encode, math_group
from tests.unit.reward_server.conftest import InProcessApp

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def app_settings() -> dict[str, Any]:
    return {"math_workers": 2, "math_timeout_s": 3}


async def grade(app: InProcessApp, body: object) -> httpx.Response:
    return await app.http.post("/v1/grade", content=encode(body), headers=JSON)


async def test_example_request_follows_the_wire_contract(app: InProcessApp) -> None:
    body = json.loads((REPO / "examples/math_request.json").read_text())
    response = await grade(app, body)
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


async def test_reward_values_come_from_the_request(app: InProcessApp) -> None:
    body = {
        "groups": [math_group("3", ["$\\boxed{3}$", "$\\boxed{4}$"])],
        "reward": {"correct": 1, "incorrect": 0},
    }
    results = (await grade(app, body)).json()["groups"][0]["results"]
    assert [r["reward"] for r in results] == [1.0, 0.0]


async def test_incorrect_answers_that_agree_share_a_class(app: InProcessApp) -> None:
    completions = [
        "$\\boxed{\\frac{1}{4}}$",
        "$\\boxed{0.25}$",
        "$\\boxed{7}$",
        "$\\boxed{1/4}$",
        "$\\boxed{3}$",
    ]
    results = (await grade(app, {"groups": [math_group("3", completions)]})).json()["groups"][0]
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
async def test_bad_input_is_a_4xx_that_names_the_field(app: InProcessApp, content: bytes, field: str) -> None:
    response = await app.http.post("/v1/grade", content=content, headers=JSON)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["error"] in {"invalid_request", "unknown_backend"}
    assert field in error["message"] or any(field in map(str, f["loc"]) for f in error["fields"])


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "loc"),
    [
        # Both were located at the body, which had nothing to do with them.
        ("GET", "/nope", {}, 404, ["path"]),
        ("GET", "/v1/grade", {}, 405, ["method"]),
        # A gzip body was refused as "not UTF-8" at the body; a plain one under that header was read.
        ("POST", "/v1/grade", {**JSON, "content-encoding": "gzip"}, 415, ["header", "content-encoding"]),
        ("POST", "/compat/openrlhf/v1/reward?backend=math", {"content-encoding": "br"}, 415, None),
    ],
)
async def test_framework_refusals_name_what_is_wrong(
    app: InProcessApp, method: str, path: str, headers: dict[str, str], status: int, loc: list[str] | None
) -> None:
    body = gzip.compress(encode({"groups": []})) if "content-encoding" in headers else None
    response = await app.http.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["fields"][0]["loc"] == (loc or ["header", "content-encoding"]), error
    assert path.split("?")[0] in error["message"] or "Content-Encoding" in error["message"], error
    if status == 405:
        assert response.headers["allow"] == "POST" and "use POST" in error["message"]


async def test_an_identity_content_encoding_is_read(app: InProcessApp) -> None:
    headers = {**JSON, "content-encoding": "identity"}
    assert (
        await app.http.post("/v1/grade", content=encode({"groups": []}), headers=headers)
    ).status_code == 200


async def test_unknown_backend_lists_valid_backends(app: InProcessApp) -> None:
    response = await grade(
        app, {"groups": [{"group_id": "a", "backend": "lean", "reference": {}, "completions": []}]}
    )
    assert response.status_code == 422
    assert "valid backends: code, math" in response.json()["message"]
    assert response.json()["fields"][0]["loc"] == ["body", "groups", 0, "backend"]


async def test_hostile_completions_get_verdicts_not_errors(app: InProcessApp) -> None:
    started = time.monotonic()
    response = await grade(app, {"groups": [math_group("5", HOSTILE_COMPLETIONS)]})
    assert response.status_code == 200, response.text[:500]
    results = response.json()["groups"][0]["results"]
    assert len(results) == len(HOSTILE_COMPLETIONS)
    statuses = [r["status"] for r in results]
    # The 1 MB completion still ends with a right answer.
    assert statuses[1] == "correct", results[1]["detail"]
    assert all(s in {"incorrect", "no_answer"} for i, s in enumerate(statuses) if i != 1), statuses
    assert time.monotonic() - started < 60


async def test_a_retried_request_is_served_from_the_cache(app: InProcessApp) -> None:
    body = {
        "request_id": "retry-1",
        "groups": [math_group("\\sqrt{117}", ["$\\boxed{3\\sqrt{13}}$", "$\\boxed{11}$"])],
    }
    first = (await grade(app, body)).json()
    hits_before = await metric(app, 'reward_cache_lookups_total{outcome="hit"}')
    second = (await grade(app, body)).json()
    assert second == first
    assert await metric(app, 'reward_cache_lookups_total{outcome="hit"}') - hits_before == 2


async def test_health_readiness_metrics_backends_and_docs(app: InProcessApp) -> None:
    http = app.http
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = (await http.get("/readyz")).json()
    assert ready["ready"] is True and ready["checks"]["backend:math"] is True
    backends = {b["name"]: b for b in (await http.get("/v1/backends")).json()["backends"]}
    assert set(backends) == {"code", "math"}
    assert "answer" in backends["math"]["reference_schema"]["properties"]
    assert "reward_completions_total" in (await http.get("/metrics")).text
    assert (await http.get("/docs")).status_code == 200
    grade_doc = (await http.get("/openapi.json")).json()["paths"]["/v1/grade"]["post"]
    # The body is read off the event loop, not by FastAPI, and still documented.
    body_schema = grade_doc["requestBody"]["content"]["application/json"]["schema"]
    assert {"groups", "reward"} <= set(body_schema["properties"])
    assert "completions" in body_schema["properties"]["groups"]["items"]["properties"]


async def metric(app: InProcessApp, name: str) -> float:
    text = (await app.http.get("/metrics")).text
    match = re.search(re.escape(name) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0


def call_group(tests: str, **reference: object) -> bytes:
    """A call-style code group whose `tests` are raw JSON text (for literals json.dumps cannot write)."""
    extra = "".join(f', "{key}": {json.dumps(value)}' for key, value in reference.items())
    return (
        '{"group_id": "c", "backend": "code", "reference": {"fn_name": "f", "tests": '
        + tests
        + extra
        + '}, "completions": ["def f(*a):\\n    return 1\\n"]}'
    ).encode()


TESTS: list[str | int] = ["body", "groups", 0, "reference", "tests"]
HOSTILE_BODIES: dict[str, tuple[bytes, list[str | int]]] = {
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
    "overflowing_output": (
        b'{"groups": [' + call_group('[{"input": [1], "output": 1e999}]') + b"]}",
        [*TESTS, 0, "output"],
    ),
    # A lone surrogate in a test, or a limit past 1e308, could not be hashed or converted: a 500.
    "surrogate_in_a_test": (
        b'{"groups": [' + call_group('[{"input": ["\\ud800"], "output": 1}]') + b"]}",
        [*TESTS, 0, "input"],
    ),
    "overflowing_memory_limit": (
        b'{"groups": [' + call_group('[{"input": [1], "output": 1}]', memory_limit_bytes=10**400) + b"]}",
        ["body", "groups", 0, "reference", "memory_limit_bytes"],
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
async def test_hostile_bodies_are_a_422_naming_the_field(app: InProcessApp, name: str, size: str) -> None:
    content, loc = HOSTILE_BODIES[name]
    if size == "over_a_mebibyte":  # read in a worker process instead of a thread: the same answer
        content += b" " * (1024 * 1024)
        assert len(content) > INLINE_MAX_BYTES
    response = await app.http.post("/v1/grade", content=content, headers=JSON)
    assert response.status_code == 422, response.text[:500]
    error = response.json()
    assert error["error"] == "invalid_request", error
    assert loc in [field["loc"] for field in error["fields"]], error
    assert ".".join(map(str, loc)) in error["message"], error
