"""The TRL adapter without TRL: the reward function against `httpx.MockTransport`, and the pure tensor steps
of `InferenceAwareGRPOTrainer` (the trainer itself runs in tests/integration/test_trl_integration.py)."""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import torch

from reward_server.schemas import RewardSpec, Status
from trainer_client.errors import RewardRequestError, RewardServerUnavailable
from trainer_client.estimators import compute_advantages
from trainer_client.integrations import trl as adapter
from trainer_client.integrations.trl import (
    combine_rewards,
    completion_text,
    group_advantages,
    make_reward_func,
    straddling_groups,
)

URL = "http://reward.test"
NAN = math.nan


class FakeServer:
    """A math server in miniature: a completion is correct when it equals the reference's answer, has no
    answer when empty, fails to grade (status `error`) when it is "ERR"; equal texts share a class."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        reward = body.get("reward") or {"correct": 1.0, "incorrect": -1.0}
        groups = []
        for group in body["groups"]:
            gold = group["reference"].get("answer")
            classes: list[str] = []
            results: list[dict[str, Any]] = []
            for text in group["completions"]:
                if text == "ERR":
                    results.append({"status": "error", "reward": None, "detail": "worker crashed"})
                    continue
                if not text:
                    results.append({"status": "no_answer", "reward": reward["incorrect"]})
                    continue
                if text not in classes:
                    classes.append(text)
                status = "correct" if text == gold else "incorrect"
                results.append(
                    {
                        "status": status,
                        "reward": reward[status],
                        "answer": text,
                        "answer_class": classes.index(text),
                    }
                )
            answer_classes = [{"answer": a, "count": 1, "correct": a == gold} for a in classes]
            groups.append(
                {"group_id": group["group_id"], "results": results, "answer_classes": answer_classes}
            )
        return httpx.Response(
            200, json={"request_id": body["request_id"], "groups": groups, "backends": {"math": "0.1.0"}}
        )


def reward_func(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> adapter.ServerRewardFunc:
    return make_reward_func(URL, transport=httpx.MockTransport(handler), **kwargs)


def call(func: adapter.ServerRewardFunc, prompts: list[Any], completions: list[Any], **columns: Any) -> Any:
    """Call `func` the way GRPOTrainer._calculate_rewards does (TRL 1.16)."""
    return func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        trainer_state=object(),
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: None,
        **columns,
    )


# --------------------------------------------------------------------------------------------------------
# The reward function


def test_one_request_with_one_group_per_run_of_prompt_and_reference() -> None:
    server = FakeServer()
    func = reward_func(server)
    prompts = ["1+1=", "1+1=", "1+1=", "2+2=", "2+2=", "2+2="]
    rewards = call(func, prompts, ["2", "3", "2", "4", "", "5"], answer=["2"] * 3 + ["4"] * 3)

    assert rewards == [1.0, -1.0, 1.0, 1.0, -1.0, -1.0]
    assert len(server.requests) == 1
    groups = server.requests[0]["groups"]
    assert [(g["backend"], g["reference"], g["completions"]) for g in groups] == [
        ("math", {"answer": "2"}, ["2", "3", "2"]),
        ("math", {"answer": "4"}, ["4", "", "5"]),
    ]
    assert len({g["group_id"] for g in groups}) == 2


def test_a_new_group_starts_wherever_the_prompt_or_the_reference_changes() -> None:
    server = FakeServer()
    prompts = ["a", "a", "b", "b", "a", "a"]
    answers = ["1", "2", "1", "1", "1", "1"]
    call(reward_func(server), prompts, ["1"] * 6, answer=answers)
    assert [len(g["completions"]) for g in server.requests[0]["groups"]] == [1, 1, 2, 2]


def test_a_group_split_across_calls_is_graded_in_its_parts() -> None:
    # A process may hold the tail of one prompt's group and the head of the next (groups straddle processes).
    server = FakeServer()
    rewards = call(
        reward_func(server), ["p", "q", "q", "q"], ["2", "3", "3", "x"], answer=["2", "3", "3", "3"]
    )
    assert rewards == [1.0, 1.0, 1.0, -1.0]
    assert [g["completions"] for g in server.requests[0]["groups"]] == [["2"], ["3", "3", "x"]]


def test_conversational_completions_are_graded_on_the_last_assistant_message() -> None:
    server = FakeServer()
    prompt = [{"role": "user", "content": "1+1?"}]
    completions = [
        [{"role": "assistant", "content": "2"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "2"}, {"type": "image"}]}],
        [
            {"role": "assistant", "content": "let me call a tool"},
            {"role": "tool", "content": "2"},
            {"role": "assistant", "content": "3"},
        ],
        [{"role": "tool", "content": "2"}],
    ]
    rewards = call(reward_func(server), [prompt] * 4, completions, answer=["2"] * 4)
    assert server.requests[0]["groups"][0]["completions"] == ["2", "2", "3", ""]
    assert rewards == [1.0, 1.0, -1.0, -1.0]


def test_completion_text() -> None:
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": None}]) == ""
    assert completion_text([]) == ""
    with pytest.raises(TypeError, match="list of messages"):
        completion_text(["not a message"])  # type: ignore[list-item]


def test_error_samples_get_none_and_keep_their_place() -> None:
    func = reward_func(FakeServer())
    rewards = call(func, ["p"] * 4, ["2", "ERR", "3", "2"], answer=["2"] * 4)
    assert rewards == [1.0, None, -1.0, 1.0]
    assert func.last is not None
    assert func.last.statuses == [Status.CORRECT, Status.ERROR, Status.INCORRECT, Status.CORRECT]


def test_the_answer_classes_of_the_last_call_are_kept_in_completion_order() -> None:
    func = reward_func(FakeServer())
    assert func.last is None
    call(func, ["p"] * 5 + ["q"] * 3, ["7", "", "5", "7", "ERR", "1", "1", "9"], answer=["7"] * 5 + ["1"] * 3)
    assert func.last is not None
    assert func.last.classes == [0, -1, 1, 0, -1, 0, 0, 1]
    assert func.last.answers == ["7", None, "5", "7", None, "1", "1", "9"]
    assert func.last.texts == ["7", "", "5", "7", "ERR", "1", "1", "9"]
    assert func.last.references == ["7"] * 5 + ["1"] * 3

    call(func, ["r"] * 2, ["3", "4"], answer=["4", "4"])
    assert func.last.classes == [0, 1]  # the latest call only


def test_name_and_logging() -> None:
    func = reward_func(FakeServer())
    assert func.__name__ == "math_reward"
    assert reward_func(FakeServer(), name="verifier").__name__ == "verifier"
    extra: dict[str, list[Any]] = {}
    metrics: dict[str, float] = {}
    func(
        prompts=["p"] * 4,
        completions=["2", "ERR", "", "3"],
        completion_ids=None,
        answer=["2"] * 4,
        log_extra=lambda column, values: extra.setdefault(column, []).extend(values),
        log_metric=metrics.__setitem__,
    )
    assert extra == {
        "math_reward_status": ["correct", "error", "no_answer", "incorrect"],
        "math_reward_answer": ["2", None, None, "3"],
    }
    assert metrics == {"math_reward/error_frac": 0.25}


def test_references_mappings_numbers_and_other_columns() -> None:
    server = FakeServer()
    func = reward_func(server, reference_column="gold", reward=RewardSpec(correct=1.0, incorrect=0.0))
    rewards = call(
        func,
        ["a", "b", "c"],
        ["12", "x", "0.5"],
        gold=[12, {"answer": "x", "extra": 1}, 0.5],
        answer=["ignored"] * 3,
    )
    assert rewards == [1.0, 1.0, 1.0]
    body = server.requests[0]
    assert [g["reference"] for g in body["groups"]] == [
        {"answer": "12"},
        {"answer": "x", "extra": 1},
        {"answer": "0.5"},
    ]
    assert body["reward"]["incorrect"] == 0.0

    with pytest.raises(ValueError, match=r"row 1: the reference column 'gold' holds NoneType"):
        call(func, ["a", "a"], ["1", "2"], gold=["1", None])


def test_a_missing_reference_column_names_the_columns_there_are() -> None:
    with pytest.raises(KeyError, match=r"'answer'.*\['solution'\]"):
        call(reward_func(FakeServer()), ["p"], ["1"], solution=["1"])


@pytest.mark.parametrize(
    ("prompts", "completions", "answers", "error", "names"),
    [
        # Each was len(None), "not reversible" or an IndexError; a string column was read letter by letter.
        (["p"], None, ["1"], TypeError, "completions must be a list with one entry per sample"),
        (None, ["a"], ["1"], TypeError, "prompts must be a list"),
        (["p"], ["a"], None, TypeError, "the reference column 'answer' must be a list"),
        (["p", "p"], ["a", "b"], "12", TypeError, "the reference column 'answer' must be a list"),
        (["p"], ["a", "b"], ["1"], ValueError, "1 prompts, 2 completions, 1 references"),
        (["p"], [None], ["1"], TypeError, "completions[0] must be a string or a list of messages"),
        (["p"], [[{"role": "assistant", "content": 5}]], ["1"], TypeError, "completions[0]: an assistant"),
        (["p"], ["a"], [float("nan")], ValueError, "row 0: the reference column 'answer' must be a finite"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    prompts: Any, completions: Any, answers: Any, error: type[Exception], names: str
) -> None:
    server = FakeServer()
    with pytest.raises(error, match=re.escape(names)):
        reward_func(server)(prompts=prompts, completions=completions, answer=answers)
    assert server.requests == []


def test_an_empty_batch_sends_no_request() -> None:
    server = FakeServer()
    func = reward_func(server)
    assert func(prompts=[], completions=[], answer=[]) == [] and server.requests == []
    assert func.last is not None and func.last.rewards == []


def test_group_classes_names_a_bad_group() -> None:
    with pytest.raises(TypeError, match=re.escape("groups[0] completions must be a list")):
        reward_func(FakeServer()).group_classes([("2", None)])  # type: ignore[list-item]


def test_an_unavailable_server_gives_none_for_the_whole_call_or_raises() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    func = reward_func(down, max_retries=0)
    assert call(func, ["p"] * 3, ["1", "2", "3"], answer=["1"] * 3) == [None, None, None]
    assert func.last is not None and func.last.classes == [-1, -1, -1]

    with pytest.raises(RewardServerUnavailable):
        call(reward_func(down, max_retries=0, on_error="raise"), ["p"], ["1"], answer=["1"])


def test_a_refused_request_always_raises() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={
                "error": "invalid_request",
                "message": "bad reference",
                "fields": [{"loc": ["body", "groups", 0, "reference", "answer"], "msg": "required"}],
            },
        )

    with pytest.raises(RewardRequestError, match="bad reference"):
        call(reward_func(refuse, max_retries=0), ["p"], ["1"], answer=["1"])


def test_group_classes_grades_whole_groups() -> None:
    server = FakeServer()
    func = reward_func(server)
    assert func.group_classes([("7", ["7", "3", "7", ""]), ("1", ["2", "2"])]) == [[0, 1, 0, -1], [0, 0]]
    assert [g["reference"] for g in server.requests[0]["groups"]] == [{"answer": "7"}, {"answer": "1"}]


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="on_error"):
        make_reward_func(URL, on_error="zero")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        make_reward_func("127.0.0.1:8000")


def test_pickles_without_its_connection_pool() -> None:
    func = make_reward_func(URL, name="verifier")
    copy = pickle.loads(pickle.dumps(func))
    assert copy.__name__ == "verifier" and copy.url == URL
    assert copy.client is not func.client


def test_importing_the_adapter_does_not_need_trl() -> None:
    if importlib.util.find_spec("trl") is not None:
        pytest.skip("TRL is installed")
    with pytest.raises(ImportError, match="needs TRL 1.16: pip install 'trl>=1.16,<1.17'"):
        adapter.InferenceAwareGRPOTrainer  # noqa: B018


# --------------------------------------------------------------------------------------------------------
# What the trainer computes


def test_combine_rewards_is_trls_weighted_sum_and_drops_server_failures() -> None:
    rewards_per_func = torch.tensor(
        [
            [1.0, 0.5],  # both graded
            [NAN, 0.5],  # our server failed: dropped, whatever the other function says
            [-1.0, NAN],  # the other function does not apply (TRL: counts 0)
            [NAN, NAN],  # nobody graded it (TRL drops it too)
        ]
    )
    combined = combine_rewards(rewards_per_func, torch.tensor([1.0, 2.0]), [0])
    assert combined.dtype == torch.float64
    assert combined[[0, 2]].tolist() == [2.0, -1.0]
    assert torch.isnan(combined[[1, 3]]).all()
    # Without server columns it is exactly TRL's rule.
    assert combine_rewards(rewards_per_func, torch.tensor([1.0, 2.0]))[1].item() == 1.0


def test_group_advantages_are_compute_advantages_per_group() -> None:
    rewards = torch.tensor([1.0, -1.0, NAN, -1.0, 0.5, 0.2, 0.9, 0.1], dtype=torch.float64)
    got = group_advantages(rewards, 4, "passk_loo")
    assert torch.equal(got, compute_advantages(rewards.view(2, 4), "passk_loo").reshape(-1))
    assert got[2].item() == 0.0

    classes = torch.tensor([0, 1, 0, -1, 2, 2, 5, 2])
    got = group_advantages(rewards, 4, "maj_loo", classes=classes)
    want = compute_advantages(rewards.view(2, 4), "maj_loo", classes=classes.view(2, 4)).reshape(-1)
    assert torch.equal(got, want)

    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(rewards, 3, "passk_loo")
    with pytest.raises(ValueError, match="k=2"):
        group_advantages(rewards, 4, "passk_loo", k=2)


@pytest.mark.parametrize(
    ("local_size", "num_processes", "group_size", "expected"),
    [
        (8, 1, 4, []),  # one process: nothing straddles
        (8, 4, 4, []),  # groups aligned with processes
        (2, 2, 4, [0]),  # each group on two processes
        (2, 4, 4, [0, 1]),
        (6, 2, 4, [1]),  # samples 4..7: 4, 5 on process 0, 6, 7 on process 1
        (3, 4, 4, [0, 1, 2]),
        (4, 2, 8, [0]),
    ],
)
def test_straddling_groups(local_size: int, num_processes: int, group_size: int, expected: list[int]) -> None:
    assert straddling_groups(local_size, num_processes, group_size) == expected
    # Brute force: a group straddles when its samples belong to more than one process.
    total = local_size * num_processes
    brute = [
        g
        for g in range(total // group_size)
        if len({i // local_size for i in range(g * group_size, (g + 1) * group_size)}) > 1
    ]
    assert brute == expected
