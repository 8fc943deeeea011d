"""Every route in-process (conftest.py) under bad input: never a 5xx, and every refusal names a field.

Two ways in. A sweep puts each of `HOSTILE_VALUES` (null, a huge integer, 1e999, NaN, a lone surrogate, a
deep list, a long string, ...) in place of each part of a valid body in turn, or removes it. Hypothesis then
damages bodies at random: one part replaced by an arbitrary JSON value, removed or joined by an unknown key;
raw bytes; a valid body cut short or with bytes that are not UTF-8; headers that lie about the content.

Whatever the input, the answer is a 2xx whose body is the route's response, or a 4xx with the project's
error body whose first field has a location (`body`, `query`, `header`, `path` or `method` first). An
unhandled exception fails the test (ASGITransport raises it). Examples are few (the app runs the real math
backend) so that the module takes seconds; each case found is also kept as an explicit test where it was
fixed (test_api.py, test_code_reference.py, test_compat_openrlhf.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reward_server.schemas import GradeResponse
from tests.unit.reward_server.conftest import InProcessApp

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LOCATION_ROOTS = {"body", "query", "header", "path", "method"}
ROOT_OF_STATUS = {404: "path", 405: "method", 415: "header"}

MATH_GROUP = {
    "group_id": "m",
    "backend": "math",
    "reference": {"answer": "2"},
    "completions": ["$\\boxed{2}$"],
}
CODE_GROUP = {
    "group_id": "c",
    "backend": "code",
    "reference": {"fn_name": "f", "tests": [{"input": [1], "output": 1}], "time_limit_s": 1},
    "completions": ["```python\ndef f(x):\n    return x\n```"],
}
TACO_GROUP = {
    "group_id": "t",
    "backend": "code",
    "reference": {
        "input_output": {"inputs": ["1\n"], "outputs": ["1\n"]},
        "time_limit": {"seconds": 1, "nanos": 0},
        "memory_limit_bytes": 256_000_000,
    },
    "completions": ["print(input())"],
}
GRADE_BODY = {
    "request_id": "r",
    "groups": [MATH_GROUP, CODE_GROUP, TACO_GROUP],
    "reward": {"correct": 1, "incorrect": 0, "no_answer": 0},
}
OPENRLHF_BODY = {"query": ["Q: 1+1? A: $\\boxed{2}$"], "prompts": ["Q: 1+1? A:"], "labels": ["2"]}
CODE_LABEL = json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})

# JSON text that json.dumps cannot write, put in place of a value.
RAW_LITERALS = ["1e999", "-1e999", "NaN", "Infinity", "9" * 400, "9" * 5000, "[" * 2000 + "]" * 2000]
SPECIAL_TEXT = ["", "\ud800", "a\udfff", "\x00", "\u202e", "x" * 20_000, "[" * 600, "nan", "inf", "1e999"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**63, -(2**63), 10**400])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(SPECIAL_TEXT),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside `value` (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


MARKER = "@@raw@@"


@st.composite
def damaged(draw: st.DrawFn, valid: Any) -> bytes:
    """`valid` with one part replaced, removed or joined by another key, as the bytes a client sends."""
    body = json.loads(json.dumps(valid))
    where = draw(st.sampled_from(paths(body)))
    action = draw(st.sampled_from(["replace", "replace", "raw", "remove", "extra"]))
    raw = draw(st.sampled_from(RAW_LITERALS))
    if not where:
        return draw(st.sampled_from([b"", b"null", b"[]", b'"x"', b"{}", raw.encode()]))
    parent = body
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if action == "remove":
        del parent[last]
    elif action == "extra" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    else:
        parent[last] = MARKER if action == "raw" else draw(json_values)
    # ensure_ascii: a lone surrogate travels as its JSON escape, as any client would send it.
    return json.dumps(body, ensure_ascii=True, allow_nan=True).replace(json.dumps(MARKER), raw).encode()


def broken_bytes(valid: Any) -> st.SearchStrategy[bytes]:
    """Raw bytes, a valid body cut short, or with bytes that are not UTF-8 inside it."""
    text = json.dumps(valid).encode()
    return (
        st.binary(max_size=64)
        | st.integers(0, len(text) - 1).map(lambda end: text[:end])
        | st.integers(0, len(text)).map(lambda at: text[:at] + b"\xff\xfe" + text[at:])
    )


headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "", "application/x-www-form-urlencoded"]
        ),
        "content-encoding": st.sampled_from(["gzip", "identity", "br", "deflate, gzip"]),
    },
)


def assert_answered(response: httpx.Response) -> Any:
    """A 2xx with a JSON body, or a 4xx error body whose first field is located; returns the body."""
    assert response.status_code < 500, response.text[:1000]
    body = response.json()
    if response.status_code < 400:
        return body
    assert set(body) == {"error", "message", "fields"}, body
    assert body["message"] and body["fields"], body
    loc = body["fields"][0]["loc"]
    assert loc and loc[0] == ROOT_OF_STATUS.get(response.status_code, loc[0]) in LOCATION_ROOTS, body
    return body


# Every part of a valid body takes each of these (JSON text, as sent), or is removed: a sweep, not a sample.
HOSTILE_VALUES = [
    "null", "true", "0", "-1", "0.5", '""', "[]", "{}", "[null]", '{"": null}',
    "1e999", "-1e999", "NaN", "9" * 400, "-" + "9" * 400, "9" * 5000,
    '"\\ud800"', '"a\\udfff"', '["\\ud800"]', '{"\\ud800": 1}', json.dumps("x" * 20_000),
    "[" * 300 + "]" * 300,
    "[" * 900 + "]" * 900, '"' + "[" * 600 + '"',
    # Texts that once took a regex cubic time (a duration, a fence line): minutes, holding the GIL.
    json.dumps("1" + " " * 3000 + "x"), json.dumps("```" + " " * 3000 + "`"),
]  # fmt: skip
SLOW_S = 20.0  # what no answer may take here (each takes milliseconds): a generous bound, not a benchmark
REMOVED = "@@removed@@"


def sweep(valid: Any) -> list[bytes]:
    """`valid` with each part in turn replaced by each of `HOSTILE_VALUES`, or removed."""
    bodies = []
    for where in paths(valid)[1:]:
        for value in [*HOSTILE_VALUES, REMOVED]:
            body = json.loads(json.dumps(valid))
            parent = body
            for step in where[:-1]:
                parent = parent[step]
            if value == REMOVED:
                del parent[where[-1]]
                bodies.append(json.dumps(body).encode())
            else:
                parent[where[-1]] = MARKER
                bodies.append(json.dumps(body).replace(json.dumps(MARKER), value).encode())
    return bodies


async def test_every_part_of_a_grade_body_takes_every_hostile_value(app: InProcessApp) -> None:
    valid = await app.http.post("/v1/grade", content=json.dumps(GRADE_BODY))
    assert valid.status_code == 200, valid.text
    for content in sweep(GRADE_BODY):
        started = time.monotonic()
        response = await app.http.post("/v1/grade", content=content)
        assert_answered(response)
        assert time.monotonic() - started < SLOW_S, content[:300]


@pytest.mark.parametrize("backend", ["math", "code"])
async def test_every_part_of_an_openrlhf_body_takes_every_hostile_value(
    app: InProcessApp, backend: str
) -> None:
    valid = OPENRLHF_BODY if backend == "math" else {**OPENRLHF_BODY, "labels": [CODE_LABEL]}
    url = f"/compat/openrlhf/v1/reward?backend={backend}"
    assert (await app.http.post(url, content=json.dumps(valid))).status_code == 200
    for content in sweep(valid):
        started = time.monotonic()
        response = await app.http.post(url, content=content)
        assert_answered(response)
        assert time.monotonic() - started < SLOW_S, content[:300]


@FUZZ
@given(content=damaged(GRADE_BODY) | broken_bytes(GRADE_BODY), sent_headers=headers)
async def test_grade_answers_any_body_without_a_5xx(
    app: InProcessApp, content: bytes, sent_headers: dict[str, str]
) -> None:
    response = await app.http.post("/v1/grade", content=content, headers=sent_headers)
    body = assert_answered(response)
    if response.status_code == 200:
        GradeResponse.model_validate(body)


@FUZZ
@given(
    content=damaged(OPENRLHF_BODY)
    | damaged({**OPENRLHF_BODY, "labels": [CODE_LABEL]})
    | broken_bytes(OPENRLHF_BODY),
    # Query strings as sent: percent-escapes of bytes that are not UTF-8, or of a lone surrogate.
    query=st.lists(
        st.sampled_from(["backend=math", "backend=code", "backend=nope", "backend=", "backend=%ff"])
        | st.sampled_from(["backend=%ED%A0%80", "on_error=nan", "on_error=incorrect", "on_error=drop"]),
        max_size=3,
    ),
)
async def test_openrlhf_answers_any_body_without_a_5xx(
    app: InProcessApp, content: bytes, query: list[str]
) -> None:
    url = "/compat/openrlhf/v1/reward?" + "&".join(query)
    response = await app.http.post(url, content=content, headers={"content-type": "application/json"})
    body = assert_answered(response)
    if response.status_code == 200:
        assert len(body["rewards"]) == len(body["scores"]) == 1, body


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(["/healthz", "/readyz", "/metrics", "/v1/backends", "/v1/grade", "/nope", "/v1/"])
    | st.text(alphabet="/abz%.", max_size=12).map(lambda tail: "/" + tail),
    content=st.binary(max_size=16),
)
async def test_every_route_and_method_answers_without_a_5xx(
    app: InProcessApp, method: str, path: str, content: bytes
) -> None:
    response = await app.http.request(method, "http://test" + path, content=content)
    assert response.status_code < 500, response.text[:1000]
    if response.status_code >= 400:
        assert_answered(response)
