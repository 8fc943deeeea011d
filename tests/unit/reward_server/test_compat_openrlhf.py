"""`POST /compat/openrlhf/v1/reward` in-process (httpx.ASGITransport, lifespan run by hand): OpenRLHF's
remote reward-model format over the real math backend and the code backend on a scripted executor."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reward_server.api.request_body import INLINE_MAX_BYTES
from reward_server.api.routes.compat_openrlhf import label_reference, strip_end_tokens
from reward_server.backends.base import Verdict
from reward_server.code_grading import CodeProblem
from reward_server.grading import GradingService
from reward_server.schemas import GradeRequest, GradeResponse, Status
from tests.unit.reward_server.conftest import in_process_app

URL = "/compat/openrlhf/v1/reward"
KEY = "compat-key-" + "7" * 24
EXTRA_LOGS = {"ia_accuracy", "ia_error_rate", "ia_no_answer_rate"}


class ScriptedExecutor:
    """No sandbox: a program containing BOOM is an infrastructure error, one that prints is correct."""

    description = "test double"
    ready = True

    def __init__(self) -> None:
        self.calls: list[tuple[CodeProblem, list[str]]] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run_all(self, problem: CodeProblem, codes: Sequence[str]) -> list[Verdict]:
        self.calls.append((problem, list(codes)))
        return [
            Verdict(Status.ERROR, detail="sandbox down")
            if "BOOM" in code
            else Verdict(Status.CORRECT if "print" in code else Status.INCORRECT)
            for code in codes
        ]


@dataclass
class Server:
    http: httpx.AsyncClient
    executor: ScriptedExecutor
    requests: list[GradeRequest]  # what reached the grading service


async def start(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> AsyncIterator[Server]:
    executor = ScriptedExecutor()
    requests: list[GradeRequest] = []
    grade = GradingService.grade

    async def spy(self: GradingService, request: GradeRequest) -> GradeResponse:
        requests.append(request)
        return await grade(self, request)

    monkeypatch.setattr(GradingService, "grade", spy)
    async with in_process_app(executor, **settings) as running:
        yield Server(running.http, executor, requests)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    async for running in start(monkeypatch, math_workers=1, max_completions_per_request=8):
        yield running


def body(queries: list[str], prompts: list[str], labels: list[Any]) -> dict[str, Any]:
    return {"query": queries, "prompts": prompts, "labels": labels}


def sample(prompt: str, response: str, label: Any) -> dict[str, Any]:
    """One sample, the way OpenRLHF 0.11 sends every request."""
    return body([prompt + response], [prompt], [label])


async def post(server: Server, payload: Any, params: str = "backend=math", **kwargs: Any) -> httpx.Response:
    return await server.http.post(f"{URL}?{params}", json=payload, **kwargs)


def assert_refused(response: httpx.Response, loc: list[Any], status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert error["fields"][0]["loc"] == loc, error
    return error


PROMPT = "<|user|>What is 2+2?<|assistant|>"


async def test_the_response_is_graded_without_its_prompt(server: Server) -> None:
    response = await post(server, sample(PROMPT, "It is \\boxed{4}.", "4"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "rewards": [1.0],
        "scores": [1.0],
        "extra_logs": {"ia_accuracy": 1.0, "ia_error_rate": 0.0, "ia_no_answer_rate": 0.0},
    }
    (request,) = server.requests
    assert request.groups[0].completions == ["It is \\boxed{4}."]
    assert request.groups[0].reference == {"answer": "4"}


async def test_a_boxed_answer_in_a_few_shot_prompt_is_not_graded(server: Server) -> None:
    few_shot = "Q: What is 1+3?\nA: \\boxed{4}\n\nQ: What is 2+2?\nA:"
    response = await post(server, sample(few_shot, " I am not sure.", "4"))
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [-1.0]
    assert response.json()["scores"] == [0.0]
    assert response.json()["extra_logs"]["ia_no_answer_rate"] == 1.0
    assert server.requests[0].groups[0].completions == [" I am not sure."]


async def test_a_query_that_does_not_start_with_its_prompt_is_refused(server: Server) -> None:
    payload = body([PROMPT + "\\boxed{4}", "Q: 1+3? A: \\boxed{4}"], [PROMPT, "Q: 2+2?"], ["4", "4"])
    error = assert_refused(await post(server, payload), ["body", "query", 1])
    assert "does not start with its prompt" in error["message"]
    assert "body.query.1" in error["message"]
    assert server.requests == []  # nothing graded


async def test_samples_of_one_prompt_and_label_are_one_group_in_order(server: Server) -> None:
    other = "<|user|>What is 3+3?<|assistant|>"
    payload = body(
        [PROMPT + "\\boxed{4}", other + "\\boxed{6}", PROMPT + "\\boxed{5}", PROMPT + "\\boxed{4}"],
        [PROMPT, other, PROMPT, PROMPT],
        ["4", "6", "4", "4"],
    )
    response = await post(server, payload)
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [1.0, 1.0, -1.0, 1.0]
    assert response.json()["scores"] == [1.0, 1.0, 0.0, 1.0]
    assert response.json()["extra_logs"]["ia_accuracy"] == 0.75
    (request,) = server.requests
    assert [(g.reference, g.completions) for g in request.groups] == [
        ({"answer": "4"}, ["\\boxed{4}", "\\boxed{5}", "\\boxed{4}"]),
        ({"answer": "6"}, ["\\boxed{6}"]),
    ]


async def test_the_same_prompt_with_another_label_is_another_group(server: Server) -> None:
    payload = body([PROMPT + "\\boxed{4}", PROMPT + "\\boxed{4}"], [PROMPT, PROMPT], ["4", "5"])
    response = await post(server, payload)
    assert response.json()["rewards"] == [1.0, -1.0]
    assert len(server.requests[0].groups) == 2


async def test_a_numeric_label_is_the_gold_answer(server: Server) -> None:
    response = await post(server, sample(PROMPT, "\\boxed{4}", 4))
    assert response.json()["rewards"] == [1.0]


CODE_PROMPT = "Read a number and print it.\n"
TACO = json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]})
PROGRAM = "```python\nprint(input())\n```"


@pytest.mark.parametrize(
    ("label", "tests"),
    [
        (TACO, [("1\n", "1\n"), ("2\n", "2\n")]),
        (json.dumps([{"input": "3\n", "output": "3\n"}]), [("3\n", "3\n")]),
        ({"public_tests": {"input": ["4\n"], "output": ["4\n"]}}, [("4\n", "4\n")]),  # an object as it is
        (json.dumps({"tests": [{"input": "5\n", "output": "5\n"}]}), [("5\n", "5\n")]),
    ],
)
async def test_code_labels_are_parsed_into_the_reference(
    server: Server, label: Any, tests: list[tuple[str, str]]
) -> None:
    response = await post(server, sample(CODE_PROMPT, PROGRAM, label), "backend=code")
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [1.0]
    ((problem, codes),) = server.executor.calls
    assert [(test.input, test.output) for test in problem.tests] == tests
    assert codes == ["print(input())\n"]


async def test_a_taco_call_label_keeps_its_function(server: Server) -> None:
    label = json.dumps({"inputs": [[1, 2]], "outputs": [3], "fn_name": "add"})
    response = await post(
        server, sample("", "```python\ndef add(a, b): print(a)\n```", label), "backend=code"
    )
    assert response.status_code == 200, response.text
    problem = server.executor.calls[0][0]
    assert problem.fn_name == "add" and problem.tests[0].input == [1, 2]


@pytest.mark.parametrize(
    ("label", "loc"),
    [
        ("not json", ["body", "labels", 0]),
        ("42", ["body", "labels", 0]),
        (json.dumps({"inputs": ["1\n"]}), ["body", "labels", 0, "outputs"]),
        (json.dumps({"inputs": ["1\n"], "outputs": [5]}), ["body", "labels", 0, "outputs", 0]),
        (json.dumps([{"input": "1\n"}]), ["body", "labels", 0, 0, "output"]),
        (json.dumps({"tests": [], "bogus": 1}), ["body", "labels", 0, "tests"]),
        # A lone surrogate in a test has no UTF-8 form: hashing the reference raised (a 500).
        ('[{"input": "\\ud800", "output": "1"}]', ["body", "labels", 0, 0, "input"]),
    ],
)
async def test_a_bad_code_label_is_refused_naming_it(server: Server, label: str, loc: list[Any]) -> None:
    assert_refused(await post(server, sample(CODE_PROMPT, PROGRAM, label), "backend=code"), loc)
    assert server.executor.calls == []


@pytest.mark.parametrize(
    "end", ["<|im_end|>", "<|eot_id|>", "</s>", "<eos>", "<｜end▁of▁sentence｜>", "\n<end_of_turn>"]
)
async def test_the_end_of_sequence_token_is_not_part_of_the_program(server: Server, end: str) -> None:
    """OpenRLHF decodes with special tokens: "```<|im_end|>" would leave the fence open (a syntax error)."""
    response = await post(server, sample(CODE_PROMPT, PROGRAM + end, TACO), "backend=code")
    assert response.status_code == 200, response.text
    assert [text.rstrip() for text in server.requests[0].groups[0].completions] == [PROGRAM]
    assert server.executor.calls[0][1] == ["print(input())\n"]


@pytest.mark.parametrize(
    ("completion", "stripped"),
    [
        ("\\boxed{4}<|im_end|>", "\\boxed{4}"),
        ("\\boxed{4}\n</s>\n", "\\boxed{4}\n"),
        ("ends with a tag <b>", "ends with a tag <b>"),
        ('print("</s>")', 'print("</s>")'),
        ("trailing space  ", "trailing space  "),
        ("<eos>" * 6, "<eos>" * 2),  # at most 4 are cut: vLLM stops at the first
    ],
)
def test_strip_end_tokens(completion: str, stripped: str) -> None:
    assert strip_end_tokens(completion) == stripped


def two_samples_one_failing() -> dict[str, Any]:
    broken = "```python\nprint('BOOM')\n```"
    return body([CODE_PROMPT + PROGRAM, CODE_PROMPT + broken], [CODE_PROMPT, CODE_PROMPT], [TACO, TACO])


async def test_on_error_fail_is_a_503_naming_the_sample(server: Server) -> None:
    for params in ("backend=code", "backend=code&on_error=fail"):
        error = assert_refused(
            await post(server, two_samples_one_failing(), params), ["body", "query", 1], 503
        )
        assert error["error"] == "grading_failed"
        assert "1 of 2 samples could not be graded" in error["message"]
        assert "sandbox down" in error["message"]


async def test_on_error_nan_gives_nan_reward_and_score(server: Server) -> None:
    response = await post(server, two_samples_one_failing(), "backend=code&on_error=nan")
    assert response.status_code == 200, response.text
    assert "NaN" in response.text  # the literal OpenRLHF's json parser reads
    answer = response.json()
    assert answer["rewards"][0] == 1.0 and math.isnan(answer["rewards"][1])
    assert answer["scores"][0] == 1.0 and math.isnan(answer["scores"][1])
    assert answer["extra_logs"] == {"ia_accuracy": 0.5, "ia_error_rate": 0.5, "ia_no_answer_rate": 0.0}


async def test_on_error_incorrect_gives_the_incorrect_reward(server: Server) -> None:
    response = await post(server, two_samples_one_failing(), "backend=code&on_error=incorrect")
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [1.0, -1.0]
    assert response.json()["scores"] == [1.0, 0.0]
    assert response.json()["extra_logs"]["ia_error_rate"] == 0.5


async def test_an_error_is_graded_again_on_retry(server: Server) -> None:
    for _ in range(2):
        await post(server, two_samples_one_failing(), "backend=code&on_error=nan")
    # The correct program came from the cache the second time; the failed one was run again.
    assert [codes for _, codes in server.executor.calls] == [
        ["print(input())\n", "print('BOOM')\n"],
        ["print('BOOM')\n"],
    ]


@pytest.mark.parametrize(
    ("params", "payload", "loc"),
    [
        ("", sample(PROMPT, "x", "4"), ["query", "backend"]),
        ("backend=nope", sample(PROMPT, "x", "4"), ["query", "backend"]),
        ("backend=math&on_error=drop", sample(PROMPT, "x", "4"), ["query", "on_error"]),
        ("backend=math", {"prompts": [PROMPT], "labels": ["4"]}, ["body", "query"]),
        ("backend=math", body([], [], []), ["body", "query"]),
        ("backend=math", {"query": "one", "prompts": ["o"], "labels": ["4"]}, ["body", "query"]),
        ("backend=math", body([PROMPT + "x"], [PROMPT, PROMPT], ["4"]), ["body", "prompts"]),
        ("backend=math", body([PROMPT + "x"], [PROMPT], []), ["body", "labels"]),
        ("backend=math", sample(PROMPT, "x", None), ["body", "labels", 0]),
        ("backend=math", sample(PROMPT, "x", ""), ["body", "labels", 0]),
        ("backend=math", sample(PROMPT, "x", True), ["body", "labels", 0]),
        ("backend=math", sample(PROMPT, "x", {"problem_id": "nope"}), ["body", "labels", 0, "problem_id"]),
        ("backend=math", body([PROMPT + "x"] * 9, [PROMPT] * 9, ["4"] * 9), ["body", "query"]),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    server: Server, params: str, payload: dict[str, Any], loc: list[Any]
) -> None:
    assert_refused(await post(server, payload, params), loc)
    assert server.requests == [] or loc[-1] == "problem_id"  # problem ids are looked up while grading


async def test_malformed_json_is_refused(server: Server) -> None:
    response = await server.http.post(f"{URL}?backend=math", content=b'{"query": [')
    error = assert_refused(response, ["body", 11])
    assert error["fields"][0]["type"] == "json_invalid"


async def test_a_large_body_is_read_in_a_worker_process(server: Server) -> None:
    prompt = "x" * (INLINE_MAX_BYTES + 1000)
    response = await post(server, sample(prompt, "\\boxed{4}", "4"))
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [1.0]


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_api_keys_apply_and_a_url_can_carry_one(monkeypatch: pytest.MonkeyPatch) -> None:
    async for server in start(monkeypatch, math_workers=1, api_keys=[KEY]):
        payload = sample(PROMPT, "\\boxed{4}", "4")
        refused = await post(server, payload)
        assert refused.status_code == 401
        assert "http://user:<key>@host" in refused.json()["message"]
        assert (await post(server, payload, headers=basic("openrlhf", "wrong-key"))).status_code == 401
        assert (await post(server, payload, headers={"authorization": f"Bearer {KEY}"})).status_code == 200
        # What aiohttp sends for http://openrlhf:<key>@host/...: accepted on /compat/ only.
        assert (await post(server, payload, headers=basic("openrlhf", KEY))).status_code == 200
        grade = {
            "groups": [{"group_id": "g", "backend": "math", "reference": {"answer": "4"}, "completions": []}]
        }
        assert (await server.http.post("/v1/grade", json=grade, headers=basic("u", KEY))).status_code == 401


def test_label_reference_forms() -> None:
    assert label_reference("math", "\\frac12") == ({"answer": "\\frac12"}, "answer")
    assert label_reference("math", {"problem_id": "p"}) == ({"problem_id": "p"}, None)
    assert label_reference("code", '[{"input": "1", "output": "1"}]') == (
        {"tests": [{"input": "1", "output": "1"}]},
        "tests",
    )
    assert label_reference("other", '{"answer": "a"}') == ({"answer": "a"}, None)
    with pytest.raises(ValueError, match="JSON object"):
        label_reference("other", "[1]")
    # 1e999 reads as inf, which was graded against the gold answer "inf"; a long integer is a number.
    with pytest.raises(ValueError, match="finite"):
        label_reference("math", float("inf"))
    assert label_reference("math", 10**400) == ({"answer": "1" + "0" * 400}, "answer")


async def test_the_route_is_documented(server: Server) -> None:
    document = (await server.http.get("/openapi.json")).json()
    route = document["paths"][URL]["post"]
    assert {p["name"] for p in route["parameters"]} == {"backend", "on_error"}
    body_schema = route["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["required"]) == {"query", "prompts", "labels"}
    assert {"401", "422", "503"} <= set(route["responses"])
