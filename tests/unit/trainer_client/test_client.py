"""The reward client against `httpx.MockTransport`: retries, errors, the in-flight cap, tensors."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import torch

from reward_server.schemas import GradeGroup, GradeResponse, RewardSpec, Status
from trainer_client.client import AsyncRewardClient, RewardClient, to_tensors
from trainer_client.errors import (
    RewardClientError,
    RewardRequestError,
    RewardResponseError,
    RewardServerUnavailable,
)

URL = "http://reward.test"


def group(group_id: str = "g0", completions: list[str] | None = None) -> GradeGroup:
    return GradeGroup(
        group_id=group_id,
        backend="math",
        reference={"answer": "1/2"},
        completions=completions if completions is not None else ["a", "b", "c"],
    )


def result(status: str = "correct", answer_class: int | None = 0) -> dict[str, Any]:
    reward = {"correct": 1.0, "incorrect": -1.0, "no_answer": -1.0, "error": None}[status]
    return {"status": status, "reward": reward, "answer": "1/2", "answer_class": answer_class}


def echo(request: httpx.Request, statuses: list[str] | None = None) -> httpx.Response:
    """A well-behaved server: every completion correct (or `statuses`, cycled), ids echoed back."""
    body = json.loads(request.content)
    groups = []
    for g in body["groups"]:
        chosen = [
            (statuses or ["correct"])[i % len(statuses or ["correct"])] for i in range(len(g["completions"]))
        ]
        results = [result(s, 0 if s == "correct" else None) for s in chosen]
        classes = (
            [{"answer": "1/2", "count": chosen.count("correct"), "correct": True}]
            if "correct" in chosen
            else []
        )
        groups.append({"group_id": g["group_id"], "results": results, "answer_classes": classes})
    return httpx.Response(
        200, json={"request_id": body["request_id"], "groups": groups, "backends": {"math": "0.1.0"}}
    )


class Recorder:
    """Records the sleeps between retries instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)

    def sync(self, delay_s: float) -> None:
        self.delays.append(delay_s)


def client(handler: Callable[..., Any], recorder: Recorder | None = None, **kwargs: Any) -> AsyncRewardClient:
    return AsyncRewardClient(
        URL, transport=httpx.MockTransport(handler), sleep=recorder or Recorder(), **kwargs
    )


async def test_success_returns_the_response_and_tensors() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/grade"
        sent.append(json.loads(request.content))
        return echo(request, ["correct", "incorrect", "no_answer"])

    async with client(handler) as c:
        response = await c.grade([group()], reward=RewardSpec(correct=1, incorrect=-1), request_id="r1")
        batch = await c.grade_rewards([group()])
    assert response.request_id == "r1"
    assert sent[0]["request_id"] == "r1" and sent[0]["reward"]["correct"] == 1.0
    assert [r.status for r in response.groups[0].results] == [
        Status.CORRECT,
        Status.INCORRECT,
        Status.NO_ANSWER,
    ]
    assert batch.rewards.dtype == torch.float64 and batch.rewards.tolist() == [[1.0, -1.0, -1.0]]
    assert batch.classes.tolist() == [[0, -1, -1]]
    assert batch.correct.tolist() == [[True, False, False]]
    assert batch.group_ids == ["g0"]
    # A fresh uuid4 when no id is given.
    assert len(sent[1]["request_id"]) == 36


async def test_503_twice_then_200_is_retried_with_the_same_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bodies: list[bytes] = []
    headers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        headers.append(request.headers["x-request-id"])
        if len(bodies) <= 2:
            return httpx.Response(503, json={"error": "overloaded", "message": "busy", "fields": []})
        return echo(request)

    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="trainer_client.client"):
        async with client(handler, recorder, backoff_base_s=0.5, backoff_max_s=30) as c:
            response = await c.grade([group()])
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]  # same request id, same body: idempotent
    assert len(set(headers)) == 1 and response.request_id == headers[0] == json.loads(bodies[0])["request_id"]
    # Full jitter: uniform in [0, base * 2**(retry-1)].
    assert len(recorder.delays) == 2
    assert 0 <= recorder.delays[0] <= 0.5 and 0 <= recorder.delays[1] <= 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert "attempt 1/6" in messages[0] and "HTTP 503" in messages[0]
    assert "attempt 2/6" in messages[1]


async def test_429_with_retry_after_is_honoured() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")
        return echo(request)

    recorder = Recorder()
    async with client(handler, recorder, backoff_base_s=0.5, backoff_max_s=30) as c:
        await c.grade([group()])
    assert calls == 2
    (delay,) = recorder.delays
    assert 7 <= delay <= 7.5


async def test_retry_after_is_capped_by_backoff_max() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, headers={"Retry-After": "3600"}) if calls == 1 else echo(request)

    recorder = Recorder()
    async with client(handler, recorder, backoff_base_s=0.5, backoff_max_s=10) as c:
        await c.grade([group()])
    assert 10 <= recorder.delays[0] <= 10.5


async def test_connection_errors_and_timeouts_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if calls == 2:
            raise httpx.ReadTimeout("timed out", request=request)
        return echo(request)

    recorder = Recorder()
    async with client(handler, recorder) as c:
        response = await c.grade([group()])
    assert calls == 3 and len(recorder.delays) == 2
    assert response.groups[0].group_id == "g0"


async def test_422_is_not_retried_and_carries_the_fields() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(
            422,
            json={
                "error": "unknown_backend",
                "message": "unknown backend 'nope'; valid backends: math",
                "fields": [{"loc": ["body", "groups", 0, "backend"], "msg": "unknown backend 'nope'"}],
            },
        )

    recorder = Recorder()
    async with client(handler, recorder) as c:
        with pytest.raises(RewardRequestError) as info:
            await c.grade([group()], request_id="bad-1")
    assert calls == 1 and recorder.delays == []
    err = info.value
    assert err.status_code == 422 and err.error == "unknown_backend" and err.request_id == "bad-1"
    assert err.fields[0]["loc"] == ["body", "groups", 0, "backend"]
    assert "unknown backend 'nope'" in err.message
    assert "body.groups.0.backend" in str(err)
    assert isinstance(err, RewardClientError)


async def test_4xx_with_a_body_that_is_not_ours_still_raises_request_error() -> None:
    async with client(lambda request: httpx.Response(404, text="<html>Not Found</html>")) as c:
        with pytest.raises(RewardRequestError) as info:
            await c.grade([group()])
    assert info.value.status_code == 404 and info.value.error is None and "Not Found" in info.value.message


async def test_retries_exhausted_raise_server_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, text="bad gateway")

    recorder = Recorder()
    async with client(handler, recorder, max_retries=3) as c:
        with pytest.raises(RewardServerUnavailable) as info:
            await c.grade([group()])
    assert calls == 4 and len(recorder.delays) == 3
    assert info.value.attempts == 4 and info.value.last_status == 502 and info.value.last_error is None
    assert "bad gateway" in str(info.value)


async def test_retries_exhausted_on_connection_errors_keep_the_cause() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with client(handler, max_retries=1) as c:
        with pytest.raises(RewardServerUnavailable) as info:
            await c.grade([group()])
    assert isinstance(info.value.last_error, httpx.ConnectError)
    assert info.value.__cause__ is info.value.last_error and info.value.last_status is None


async def test_in_flight_cap_holds() -> None:
    cap = 3
    in_flight = 0
    peak = 0
    reached = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == cap:
            reached.set()
        await reached.wait()  # hold every request until the cap is reached at least once
        for _ in range(5):  # give any request beyond the cap every chance to start
            await asyncio.sleep(0)
        in_flight -= 1
        return echo(request)

    groups = [group(f"g{i}") for i in range(20)]
    async with client(handler, max_in_flight=cap, max_groups_per_request=1) as c:
        response = await c.grade(groups)
    assert peak == cap
    assert [g.group_id for g in response.groups] == [g.group_id for g in groups]


async def test_error_status_becomes_nan_and_class_minus_one() -> None:
    async with client(lambda request: echo(request, ["correct", "error", "incorrect"])) as c:
        batch = await c.grade_rewards([group(), group("g1")])
    assert batch.rewards.shape == (2, 3)
    assert batch.rewards[0, 0] == 1.0 and batch.rewards[0, 2] == -1.0
    assert math.isnan(batch.rewards[0, 1]) and math.isnan(batch.rewards[1, 1])
    assert batch.classes.tolist() == [[0, -1, -1], [0, -1, -1]]
    assert batch.valid.tolist() == [[True, False, True]] * 2
    assert batch.statuses[0] == [Status.CORRECT, Status.ERROR, Status.INCORRECT]


def test_to_tensors_is_pure_and_never_rewards_an_error() -> None:
    response = GradeResponse.model_validate(
        {
            "groups": [
                {
                    "group_id": "g",
                    "results": [
                        result("correct", 0),
                        result("incorrect", 1),
                        # Even a (broken) reward on an error never reaches the trainer.
                        {"status": "error", "reward": -1.0, "answer": None, "answer_class": None},
                        result("no_answer", None),
                    ],
                    "answer_classes": [],
                }
            ],
            "backends": {},
        }
    )
    batch = to_tensors(response)
    assert batch.classes.dtype == torch.int64 and batch.correct.dtype == torch.bool
    assert batch.rewards[0, :2].tolist() == [1.0, -1.0] and math.isnan(batch.rewards[0, 2])
    assert batch.rewards[0, 3] == -1.0
    assert batch.classes.tolist() == [[0, 1, -1, -1]]
    empty = to_tensors(GradeResponse(groups=[], backends={}))
    assert empty.rewards.shape == (0, 0)


def test_to_tensors_refuses_ragged_groups() -> None:
    response = GradeResponse.model_validate(
        {
            "groups": [
                {"group_id": "a", "results": [result()], "answer_classes": []},
                {"group_id": "b", "results": [result(), result()], "answer_classes": []},
            ],
            "backends": {},
        }
    )
    with pytest.raises(ValueError, match="different numbers of completions"):
        to_tensors(response)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda body: body["groups"].pop(),  # a group missing
        lambda body: body["groups"][0]["results"].pop(),  # a completion missing
        lambda body: body["groups"][0].update(group_id="other"),  # another group
        lambda body: body.update(request_id="someone-else"),  # another request
        lambda body: body["groups"][0]["results"][0].update(reward=None),  # no reward for a verdict
        lambda body: body["groups"][0]["results"][0].update(answer_class=5),  # class out of range
        lambda body: body.pop("backends"),  # not a GradeResponse
    ],
)
async def test_mismatched_or_malformed_response_raises_response_error(corrupt: Callable[[Any], Any]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        body = json.loads(echo(request).content)
        corrupt(body)
        return httpx.Response(200, json=body)

    async with client(handler) as c:
        with pytest.raises(RewardResponseError):
            await c.grade([group("g0"), group("g1")])
    assert calls == 1  # not retried


async def test_non_json_200_raises_response_error() -> None:
    async with client(lambda request: httpx.Response(200, text="<html>hello</html>")) as c:
        with pytest.raises(RewardResponseError, match="not a GradeResponse"):
            await c.grade([group()])


async def test_chunking_preserves_order_and_ids() -> None:
    sent: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        # Answer the later chunks first, so that order comes from the client, not the arrival time.
        await asyncio.sleep(0.001 * (10 - int(body["request_id"].rsplit("/", 1)[1])))
        return echo(request)

    groups = [group(f"g{i}", [f"c{i}"] * (i % 3 + 1)) for i in range(10)]
    async with client(handler, max_groups_per_request=3) as c:
        response = await c.grade(groups, request_id="batch")
    assert sorted(len(body["groups"]) for body in sent) == [1, 3, 3, 3]
    assert sorted(body["request_id"] for body in sent) == ["batch/0", "batch/1", "batch/2", "batch/3"]
    assert response.request_id == "batch"
    assert [g.group_id for g in response.groups] == [f"g{i}" for i in range(10)]
    assert [len(g.results) for g in response.groups] == [i % 3 + 1 for i in range(10)]
    assert response.backends == {"math": "0.1.0"}


async def test_a_failing_chunk_fails_the_batch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["request_id"].endswith("/1"):
            return httpx.Response(422, json={"error": "invalid_request", "message": "bad", "fields": []})
        return echo(request)

    async with client(handler, max_groups_per_request=1) as c:
        with pytest.raises(RewardRequestError):
            await c.grade([group(f"g{i}") for i in range(4)])


async def test_no_groups_sends_nothing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client(handler) as c:
        response = await c.grade([])
    assert response.groups == [] and to_tensors(response).rewards.shape == (0, 0)


async def test_duplicate_group_ids_are_refused_before_sending() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client(handler, max_groups_per_request=1) as c:
        with pytest.raises(ValueError, match="duplicate group_id"):
            await c.grade([group("same"), group("same")])


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        AsyncRewardClient("localhost:8000")
    with pytest.raises(ValueError, match="http"):
        RewardClient("127.0.0.1")


def test_timeouts_are_explicit() -> None:
    c = RewardClient(URL, timeout_s=12, connect_timeout_s=3)
    try:
        timeout = c._http.timeout
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (3, 12, 12, 12)
    finally:
        c.close()


def test_sync_client_retries_and_raises_the_same_errors() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls == 2:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return echo(request, ["error", "correct"])

    recorder = Recorder()
    with RewardClient(
        URL, transport=httpx.MockTransport(handler), sleep=recorder.sync, max_groups_per_request=1
    ) as c:
        batch = c.grade_rewards([group("a", ["x", "y"]), group("b", ["x", "y"])])
    assert calls == 4 and len(recorder.delays) == 2 and 2 <= recorder.delays[1] <= 2.5
    assert math.isnan(batch.rewards[0, 0]) and batch.rewards[:, 1].tolist() == [1.0, 1.0]
    assert batch.group_ids == ["a", "b"]

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "invalid_request", "message": "m", "fields": []})

    with RewardClient(URL, transport=httpx.MockTransport(refuse), sleep=recorder.sync) as c:
        with pytest.raises(RewardRequestError):
            c.grade([group()])

    with RewardClient(URL, transport=httpx.MockTransport(lambda r: httpx.Response(500)), max_retries=0) as c:
        with pytest.raises(RewardServerUnavailable):
            c.grade([group()])


KEY = "k" * 20 + "-secret"


@pytest.mark.parametrize(
    ("api_key", "env", "sent"),
    [
        (KEY, None, f"Bearer {KEY}"),
        (None, KEY, f"Bearer {KEY}"),  # REWARD_SERVER_API_KEY
        (KEY, "other-key-from-the-environment", f"Bearer {KEY}"),  # the argument wins
        ("", KEY, None),  # explicitly none
        (None, None, None),
    ],
)
async def test_the_api_key_is_sent_as_a_bearer_token(
    monkeypatch: pytest.MonkeyPatch, api_key: str | None, env: str | None, sent: str | None
) -> None:
    if env is not None:
        monkeypatch.setenv("REWARD_SERVER_API_KEY", env)
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return echo(request)

    async with AsyncRewardClient(URL, api_key=api_key, transport=httpx.MockTransport(handler)) as client:
        await client.grade([group()])
    with RewardClient(URL, api_key=api_key, transport=httpx.MockTransport(handler)) as sync_client:
        sync_client.grade([group()])
    assert seen == [sent, sent]


async def test_a_refused_key_fails_fast_and_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        body = {"error": "unauthorized", "message": "invalid API key", "fields": []}
        return httpx.Response(401, json=body, headers={"www-authenticate": "Bearer"})

    caplog.set_level(logging.DEBUG)
    async with AsyncRewardClient(URL, api_key=KEY, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RewardRequestError) as info:
            await client.grade([group()])
    assert calls == 1 and info.value.status_code == 401 and info.value.error == "unauthorized"
    assert KEY not in str(info.value) and KEY not in caplog.text


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="printable ASCII") as info:
        RewardClient(URL, api_key="line\nbreak-in-the-key")
    assert "break-in-the-key" not in str(info.value)
