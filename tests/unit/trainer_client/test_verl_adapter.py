"""The verl adapter without verl: grouping by uid, the estimator wrapper, the reward function and its
coalescer (against `httpx.MockTransport`), backends and references. The same code inside real verl is
tested in tests/integration/test_verl_integration.py."""

from __future__ import annotations

import asyncio
import doctest
import json
import math
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from reward_server.schemas import CompletionResult, Status
from trainer_client.errors import RewardRequestError, RewardServerUnavailable
from trainer_client.estimators import available_estimators, compute_advantages
from trainer_client.integrations import _arguments, verl_estimators, verl_reward
from trainer_client.integrations.verl_estimators import (
    MissingAnswerClasses,
    answer_classes,
    estimator_params,
    group_rows,
    grouped_advantages,
    make_estimator,
    verl_names,
)
from trainer_client.integrations.verl_reward import (
    RESULT_KEYS,
    GradeCoalescer,
    SampleGradingError,
    compute_score,
    compute_score_sync,
    group_answer_classes,
    infer_backend,
    to_reference,
    to_result,
)

URL = "http://reward.test"
NAN = math.nan

# Parameters that make every estimator run on groups of up to 4 valid samples.
PARAMS: dict[str, dict[str, Any]] = {
    "leave_p_out": {"p": 1},
    "softmax_loo": {"beta": 2.0},
    "passk_softmax_baseline": {"beta": 2.0},
    "pkpo": {"k": 2},
    "pkpo_loo1": {"k": 2},
}


def test_doctests() -> None:
    assert doctest.testmod(verl_estimators).failed == 0
    assert doctest.testmod(_arguments).failed == 0


# --------------------------------------------------------------------------------------------------------
# Grouping, padding and scattering


def test_group_rows_keeps_first_appearance_and_row_order() -> None:
    assert group_rows(np.array(["b", "a", "b", "c", "b", "a"], dtype=object)).tolist() == [
        [0, 2, 4],
        [1, 5, -1],
        [3, -1, -1],
    ]
    assert group_rows([]).shape == (0, 0)


def shuffled_batch(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, list[list[int]]]:
    """Rows of 4 groups (sizes 4, 3, 4, 1, like a batch after filtering), shuffled, with NaN samples.

    Returns scores [bs], uids [bs], classes [bs] and the rows of each group in order of first appearance.
    """
    generator = torch.Generator().manual_seed(seed)
    sizes = {"p0": 4, "p1": 3, "p2": 4, "p3": 1}
    uids = [uid for uid, size in sizes.items() for _ in range(size)]
    order = torch.randperm(len(uids), generator=generator).tolist()
    uids = [uids[i] for i in order]
    scores = torch.randint(0, 2, (len(uids),), generator=generator).to(torch.float64)
    scores[[1, 6]] = NAN
    classes = torch.randint(-1, 3, (len(uids),), generator=generator)
    groups: dict[str, list[int]] = {}
    for row, uid in enumerate(uids):
        groups.setdefault(uid, []).append(row)
    return scores, np.array(uids, dtype=object), classes, list(groups.values())


def reference_advantages(
    scores: torch.Tensor, groups: list[list[int]], name: str, classes: torch.Tensor | None, **params: Any
) -> torch.Tensor:
    """compute_advantages group by group (each its own [1, n] call, no padding), scattered by hand."""
    out = torch.zeros(scores.shape[0], dtype=torch.float64)
    for rows in groups:
        index = torch.tensor(rows)
        group_classes = None if classes is None else classes[index].unsqueeze(0)
        k = params.get("k")
        call = {**params, "k": min(k, len(rows)) if k is not None else None}
        if len(rows) < 2:
            continue  # a group of one: advantage 0 (compute_advantages agrees, its n < 2 path)
        out[index] = compute_advantages(scores[index].unsqueeze(0), name, classes=group_classes, **call)[0]
    return out


@pytest.mark.parametrize("name", available_estimators())
def test_grouped_advantages_equal_compute_advantages_per_group(name: str) -> None:
    scores, uids, classes, groups = shuffled_batch()
    params = PARAMS.get(name, {})
    needs_classes = name in verl_estimators.MAJORITY_ESTIMATORS
    got = grouped_advantages(scores, uids, name, classes=classes if needs_classes else None, **params)
    expected = reference_advantages(scores, groups, name, classes if needs_classes else None, **params)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert got[torch.isnan(scores)].eq(0).all()


def test_grouped_advantages_checks_lengths() -> None:
    with pytest.raises(ValueError, match="index has 2 uids for 3 rows"):
        grouped_advantages(torch.zeros(3), ["a", "a"], "mean_loo")
    with pytest.raises(ValueError, match="classes must have shape"):
        grouped_advantages(torch.zeros(2), ["a", "a"], "maj_loo", classes=torch.zeros(3, dtype=torch.int64))


# --------------------------------------------------------------------------------------------------------
# The verl-shaped estimator


def verl_inputs(scores: torch.Tensor, length: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """token_level_rewards with the score on the last valid token, and a ragged response mask."""
    lengths = [length - (row % 3) for row in range(scores.shape[0])]
    mask = torch.zeros(scores.shape[0], length)
    rewards = torch.zeros(scores.shape[0], length)
    for row, valid in enumerate(lengths):
        mask[row, :valid] = 1
        rewards[row, valid - 1] = scores[row]
    return rewards, mask


def test_names_cover_every_estimator() -> None:
    assert set(verl_names()) == {f"ia_{name}" for name in available_estimators()}
    assert {"ia_passk_loo", "ia_pkpo_loo1", "ia_maj_loo", "ia_maj_biased"} <= set(verl_names())


def test_estimator_broadcasts_over_the_response_like_grpo() -> None:
    scores, uids, _, groups = shuffled_batch()
    rewards, mask = verl_inputs(scores.float())
    advantages, returns = make_estimator("passk_loo")(
        token_level_rewards=rewards, response_mask=mask, index=uids, config=None, epsilon=1e-6
    )
    expected = reference_advantages(scores, groups, "passk_loo", None)
    assert advantages.shape == mask.shape and advantages.dtype == rewards.dtype
    torch.testing.assert_close(advantages, expected.float().unsqueeze(-1) * mask)
    assert returns is advantages
    assert make_estimator("passk_loo").__name__ == "ia_passk_loo"


def test_estimator_reads_parameters_from_the_algorithm_config() -> None:
    scores, uids, _, groups = shuffled_batch(seed=3)
    rewards, mask = verl_inputs(scores.float())
    config = {"inference_aware": {"k": 2}, "adv_estimator": "ia_pkpo_loo1", "gamma": 1.0}
    advantages, _ = make_estimator("pkpo_loo1")(
        token_level_rewards=rewards, response_mask=mask, index=uids, config=config
    )
    expected = reference_advantages(scores, groups, "pkpo_loo1", None, k=2)
    torch.testing.assert_close(advantages, expected.float().unsqueeze(-1) * mask)
    with pytest.raises(ValueError, match="requires k"):
        make_estimator("pkpo")(token_level_rewards=rewards, response_mask=mask, index=uids, config={})


def test_estimator_params() -> None:
    assert estimator_params(None) == {"k": None, "p": None, "beta": None}
    assert estimator_params({"gamma": 1.0}) == {"k": None, "p": None, "beta": None}
    assert estimator_params({"inference_aware": {"k": "4", "beta": 1}}) == {"k": 4, "p": None, "beta": 1.0}
    with pytest.raises(ValueError, match=r"unknown keys \['kk'\]"):
        estimator_params({"inference_aware": {"kk": 4}})


def test_estimator_needs_uids() -> None:
    rewards, mask = verl_inputs(torch.ones(2))
    with pytest.raises(ValueError, match="no 'uid' column"):
        make_estimator("mean_loo")(token_level_rewards=rewards, response_mask=mask, config=None)
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        make_estimator("nope")


def test_majority_vote_without_classes_explains_what_is_missing() -> None:
    rewards, mask = verl_inputs(torch.ones(3))
    with pytest.raises(MissingAnswerClasses) as caught:
        make_estimator("maj_loo")(token_level_rewards=rewards, response_mask=mask, index=["a"] * 3)
    message = str(caught.value)
    assert "ia_maj_loo" in message and "#7473" in message and "trainer_mode=ia_sync" in message


def test_majority_vote_takes_classes_from_the_context_or_the_call() -> None:
    scores, uids, classes, groups = shuffled_batch(seed=5)
    rewards, mask = verl_inputs(scores.float())
    expected = reference_advantages(scores, groups, "maj_loo", classes).float().unsqueeze(-1) * mask
    estimator = make_estimator("maj_loo")
    with answer_classes(uids, classes.numpy()):
        advantages, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=uids)
    torch.testing.assert_close(advantages, expected)
    advantages, _ = estimator(token_level_rewards=rewards, response_mask=mask, index=uids, classes=classes)
    torch.testing.assert_close(advantages, expected)
    # The context is gone after the block, and it refuses rows it was not given for.
    with pytest.raises(MissingAnswerClasses):
        estimator(token_level_rewards=rewards, response_mask=mask, index=uids)
    with answer_classes(uids[::-1], classes.numpy()), pytest.raises(MissingAnswerClasses, match="other rows"):
        estimator(token_level_rewards=rewards, response_mask=mask, index=uids)


def test_the_estimators_and_reward_modules_never_import_verl() -> None:
    code = (
        "import sys\n"
        "import trainer_client.integrations.verl_estimators, trainer_client.integrations.verl_reward\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('verl', 'ray', 'transfer_queue')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_without_verl_logs_a_warning_instead_of_failing() -> None:
    code = (
        "import logging, sys\n"
        "sys.modules['verl'] = None  # as if verl were not installed\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "import trainer_client.integrations.verl_plugin\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "WARNING inference-aware verl plugin: verl could not be imported" in done.stderr
    assert "not registered" in done.stderr


# --------------------------------------------------------------------------------------------------------
# Backends, references, results


@pytest.mark.parametrize(
    ("source", "backend"),
    [
        ("lighteval/MATH", "math"),
        ("DigitalLearningGmbH/MATH-lighteval", "math"),
        ("HuggingFaceH4/MATH-500", "math"),
        ("math", "math"),
        ("gsm8k", "math"),
        ("openai/gsm8k", "math"),
        ("math_dapo", "math"),
        ("aime_2024", "math"),
        ("numina_olympiads", "math"),
        ("codecontests", "code"),
        ("taco", "code"),
        ("apps", "code"),
        ("code", "code"),
        ("codeforces", "code"),
    ],
)
def test_infer_backend(source: str, backend: str) -> None:
    assert infer_backend(source) == backend


def test_infer_backend_unknown_or_overridden() -> None:
    assert infer_backend("my/dataset", "math") == "math"
    assert infer_backend("lighteval/MATH", "code") == "code"
    with pytest.raises(ValueError, match="reward_kwargs.backend"):
        infer_backend("my/dataset")


def test_to_reference() -> None:
    tests = {"inputs": ["1\n"], "outputs": ["2\n"], "fn_name": None}
    assert to_reference("math", "\\frac{1}{2}") == {"answer": "\\frac{1}{2}"}
    assert to_reference("math", 72) == {"answer": "72"}
    assert to_reference("code", json.dumps(tests)) == {"input_output": json.dumps(tests)}
    assert to_reference("code", tests) == {"input_output": tests}
    # numpy values from a parquet row become JSON types; our own references pass through.
    parquet = {"inputs": np.array(["1\n"], dtype=object), "outputs": np.array(["2\n"], dtype=object)}
    assert to_reference("code", parquet) == {"input_output": {"inputs": ["1\n"], "outputs": ["2\n"]}}
    assert to_reference("math", {"problem_id": "p1"}) == {"problem_id": "p1"}
    with pytest.raises(ValueError, match="expected one of"):
        to_reference("math", {"gold": "1"})
    with pytest.raises(ValueError, match="must be a string"):
        to_reference("math", ["1"])


@pytest.mark.parametrize(
    ("status", "reward", "answer", "answer_class", "expected"),
    [
        ("correct", 1.0, "2", 0, {"score": 1.0, "acc": 1.0, "pred": "2", "answer_class": 0}),
        ("incorrect", -1.0, "3", 1, {"score": -1.0, "acc": 0.0, "pred": "3", "answer_class": 1}),
        ("no_answer", -1.0, None, None, {"score": -1.0, "acc": 0.0, "pred": "", "answer_class": -1}),
    ],
)
def test_to_result_has_one_key_set(
    status: str, reward: float, answer: str | None, answer_class: int | None, expected: dict[str, Any]
) -> None:
    result = CompletionResult(status=Status(status), reward=reward, answer=answer, answer_class=answer_class)
    for on_error in ("raise", "nan"):
        out = to_result(result, on_error)  # type: ignore[arg-type]
        assert tuple(out) == RESULT_KEYS
        assert out == {**expected, "status": status}


def test_to_result_of_an_error_raises_or_is_nan() -> None:
    error = CompletionResult(status=Status.ERROR, reward=None, detail="grading failed: worker died")
    with pytest.raises(SampleGradingError, match="worker died"):
        to_result(error, "raise")
    out = to_result(error, "nan")
    assert tuple(out) == RESULT_KEYS
    assert math.isnan(out["score"]) and math.isnan(out["acc"])
    assert out["status"] == "error" and out["pred"] == "" and out["answer_class"] == -1


# --------------------------------------------------------------------------------------------------------
# The coalescer and the reward functions, against a mock server


class MockServer:
    """A grading server: `2` is the right answer, an `X` completion fails to grade, reference `bad` is a 422.

    Records every request body. Classes are per group, in order of first appearance, like the server's.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            self.bodies.append(body)
        if any(group["reference"].get("answer") == "bad" for group in body["groups"]):
            return httpx.Response(
                422, json={"error": "invalid_request", "message": "bad reference", "fields": []}
            )
        groups = []
        for group in body["groups"]:
            gold = group["reference"].get("answer")
            results, classes = [], []
            for text in group["completions"]:
                if text == "X":
                    results.append({"status": "error", "reward": None, "detail": "worker died"})
                    continue
                if text not in classes:
                    classes.append(text)
                status = "correct" if text == gold else "incorrect"
                reward = 1.0 if status == "correct" else -1.0
                results.append(
                    {"status": status, "reward": reward, "answer": text, "answer_class": classes.index(text)}
                )
            summary = [{"answer": a, "count": 1, "correct": a == gold} for a in classes]
            groups.append({"group_id": group["group_id"], "results": results, "answer_classes": summary})
        return httpx.Response(
            200, json={"request_id": body["request_id"], "groups": groups, "backends": {"math": "0"}}
        )

    @property
    def samples_per_request(self) -> list[int]:
        return [sum(len(g["completions"]) for g in body["groups"]) for body in self.bodies]


@pytest.fixture
def server() -> MockServer:
    return MockServer()


@pytest.fixture
def use_coalescer(
    monkeypatch: pytest.MonkeyPatch, server: MockServer
) -> Callable[..., dict[Any, GradeCoalescer]]:
    """compute_score / compute_score_sync get coalescers (one per event loop, as from get_coalescer) that
    talk to the mock server; returns the dict of those made so far."""

    def install(**kwargs: Any) -> dict[Any, GradeCoalescer]:
        kwargs.setdefault("transport", httpx.MockTransport(server))
        kwargs.setdefault("max_retries", 0)
        made: dict[Any, GradeCoalescer] = {}

        def per_loop(url: str, **_: Any) -> GradeCoalescer:
            loop = asyncio.get_running_loop()
            if loop not in made:
                made[loop] = GradeCoalescer(url, **kwargs)
            return made[loop]

        monkeypatch.setattr(verl_reward, "get_coalescer", per_loop)
        return made

    return install


async def test_concurrent_calls_become_one_request_grouped_by_reference(
    server: MockServer, use_coalescer: Callable[..., dict[Any, GradeCoalescer]]
) -> None:
    made = use_coalescer(window_ms=200)
    calls = [
        compute_score("lighteval/MATH", answer, gold, {"index": i}, url=URL)
        for i, (answer, gold) in enumerate([("2", "2"), ("3", "2"), ("2", "2"), ("5", "5"), ("3", "2")] * 10)
    ]
    results = await asyncio.gather(*calls)
    (coalescer,) = made.values()
    assert coalescer.requests_sent == 1 and server.samples_per_request == [50]
    (body,) = server.bodies
    assert [(g["reference"], len(g["completions"])) for g in body["groups"]] == [
        ({"answer": "2"}, 40),
        ({"answer": "5"}, 10),
    ]
    assert {tuple(result) for result in results} == {RESULT_KEYS}
    assert [r["score"] for r in results[:5]] == [1.0, -1.0, 1.0, 1.0, -1.0]
    # Samples of one prompt graded together share the group's classes.
    assert [r["answer_class"] for r in results[:3]] == [0, 1, 0]


async def test_a_full_batch_goes_out_without_waiting(
    server: MockServer, use_coalescer: Callable[..., dict[Any, GradeCoalescer]]
) -> None:
    use_coalescer(window_ms=60_000, max_batch=4)
    results = await asyncio.wait_for(
        asyncio.gather(*(compute_score("math", "2", "2", url=URL) for _ in range(8))), timeout=10
    )
    assert server.samples_per_request == [4, 4]
    assert all(r["acc"] == 1.0 for r in results)


def test_sync_calls_from_threads_are_batched_too(
    server: MockServer, use_coalescer: Callable[..., dict[Any, GradeCoalescer]]
) -> None:
    use_coalescer(window_ms=200)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: compute_score_sync("gsm8k", str(i % 3), "2", url=URL), range(32)))
    assert sum(server.samples_per_request) == 32 and len(server.bodies) <= 2
    assert [r["acc"] for r in results[:3]] == [0.0, 0.0, 1.0]


async def test_each_event_loop_gets_its_own_coalescer() -> None:
    first = verl_reward.get_coalescer("http://a.test:1")
    assert verl_reward.get_coalescer("http://a.test:1") is first
    assert verl_reward.get_coalescer("http://a.test:1", window_ms=1) is not first

    async def elsewhere() -> GradeCoalescer:
        return verl_reward.get_coalescer("http://a.test:1")

    assert await asyncio.to_thread(asyncio.run, elsewhere()) is not first
    await verl_reward.aclose_coalescers()
    assert verl_reward.get_coalescer("http://a.test:1") is not first
    await verl_reward.aclose_coalescers()


async def test_a_coalescer_refuses_a_second_event_loop(server: MockServer) -> None:
    coalescer = GradeCoalescer(URL, transport=httpx.MockTransport(server), window_ms=0)
    assert (await coalescer.grade("math", {"answer": "2"}, "2")).status is Status.CORRECT

    async def elsewhere() -> CompletionResult:
        return await coalescer.grade("math", {"answer": "2"}, "2")

    with pytest.raises(RuntimeError, match="one event loop"):
        await asyncio.to_thread(asyncio.run, elsewhere())
    await coalescer.aclose()


async def test_an_error_sample_raises_with_the_servers_detail_or_is_nan(
    use_coalescer: Callable[..., dict[Any, GradeCoalescer]],
) -> None:
    use_coalescer(window_ms=50)
    good, bad = await asyncio.gather(
        compute_score("math", "2", "2", url=URL),
        compute_score("math", "X", "2", url=URL),
        return_exceptions=True,
    )
    assert isinstance(good, dict) and good["score"] == 1.0
    assert isinstance(bad, SampleGradingError) and "worker died" in str(bad)
    nan = await compute_score("math", "X", "2", url=URL, on_error="nan")
    assert tuple(nan) == RESULT_KEYS and math.isnan(nan["score"]) and nan["status"] == "error"


async def test_a_refused_reference_fails_only_its_own_samples(
    server: MockServer, use_coalescer: Callable[..., dict[Any, GradeCoalescer]]
) -> None:
    use_coalescer(window_ms=100)
    results = await asyncio.gather(
        compute_score("math", "2", "2", url=URL),
        compute_score("math", "2", "bad", url=URL),
        compute_score("math", "5", "5", url=URL),
        return_exceptions=True,
    )
    assert isinstance(results[1], RewardRequestError) and results[1].status_code == 422
    assert [r["score"] for r in (results[0], results[2])] == [1.0, 1.0]  # type: ignore[index]
    # One request with all three groups, refused, then each group alone.
    assert [len(body["groups"]) for body in server.bodies] == [3, 1, 1, 1]


async def test_an_unreachable_server_raises_even_with_nan(
    use_coalescer: Callable[..., dict[Any, GradeCoalescer]],
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    use_coalescer(transport=httpx.MockTransport(down), window_ms=0)
    with pytest.raises(RewardServerUnavailable):
        await compute_score("math", "2", "2", url=URL, on_error="nan")


async def test_reward_kwargs_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match=r"unknown reward_kwargs \['ulr'\]"):
        await compute_score("math", "2", "2", ulr=URL)
    with pytest.raises(ValueError, match="REWARD_SERVER_URL"):
        await compute_score("math", "2", "2")
    with pytest.raises(ValueError, match="on_error"):
        await compute_score("math", "2", "2", url=URL, on_error="zero")
    # verl's own extra keywords are accepted (and unused).
    monkeypatch.setenv("REWARD_SERVER_URL", "http://from.env")
    seen = {}

    def fake(url: str, **kwargs: Any) -> Any:
        seen["url"] = url
        raise RuntimeError("stop here")

    monkeypatch.setattr(verl_reward, "get_coalescer", fake)
    with pytest.raises(RuntimeError, match="stop here"):
        await compute_score("math", "2", "2", reward_router_address=None, reward_model_tokenizer=None)
    assert seen["url"] == "http://from.env"


def test_group_answer_classes_grades_each_uid_as_one_group(server: MockServer) -> None:
    uids = ["q1", "q2", "q1", "q1", "q2"]
    completions = ["7", "5", "2", "7", "X"]
    classes = group_answer_classes(
        uids,
        completions,
        ["math"] * 5,
        ["2", "5", "2", "2", "5"],
        url=URL,
        transport=httpx.MockTransport(server),
    )
    assert classes == [0, 0, 1, 0, -1]
    (body,) = server.bodies
    assert [g["completions"] for g in body["groups"]] == [["7", "2", "7"], ["5", "X"]]
    with pytest.raises(ValueError, match="one entry per row"):
        group_answer_classes(["a"], [], [], [], url=URL)


# --------------------------------------------------------------------------------------------------------
# Bad arguments name themselves (they were IndexErrors, len(None), or pydantic errors about a GradeGroup)


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        ({"solution_str": None}, TypeError, "solution_str"),
        ({"solution_str": 5}, TypeError, "solution_str"),
        ({"ground_truth": None, "data_source": "code"}, ValueError, "code ground_truth"),
        ({"ground_truth": float("nan")}, ValueError, "math ground_truth must be a finite number"),
        ({"backend": 5}, TypeError, "reward_kwargs.backend"),
        ({"window_ms": "soon"}, ValueError, "reward_kwargs.window_ms"),
        ({"max_batch": None}, ValueError, "reward_kwargs.max_batch"),
        ({"reward": [1.0]}, TypeError, "reward_kwargs.reward"),
        ({"reward": {"correct": "high"}}, ValueError, "reward_kwargs.reward: correct"),
    ],
)
async def test_a_bad_sample_or_kwarg_is_refused_naming_it(
    use_coalescer: Callable[..., dict[Any, GradeCoalescer]],
    call: dict[str, Any],
    error: type[Exception],
    names: str,
) -> None:
    use_coalescer(window_ms=0)
    arguments = {"data_source": "math", "solution_str": "2", "ground_truth": "2", "url": URL, **call}
    with pytest.raises(error, match=re.escape(names)):
        await compute_score(**arguments)


async def test_a_none_completion_fails_alone_not_its_batch(
    server: MockServer, use_coalescer: Callable[..., dict[Any, GradeCoalescer]]
) -> None:
    # It was put in the batch's GradeGroup, whose ValidationError every sample of the batch then got.
    use_coalescer(window_ms=100)
    good, bad = await asyncio.gather(
        compute_score("math", "2", "2", url=URL),
        compute_score("math", None, "2", url=URL),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert isinstance(bad, TypeError) and "solution_str" in str(bad)
    assert isinstance(good, dict) and good["score"] == 1.0


@pytest.mark.parametrize(
    ("arguments", "error", "names"),
    [
        ((None, ["7"], ["math"], ["2"]), TypeError, "uids must be a list"),
        ((["a"], "7", ["math"], ["2"]), TypeError, "completions must be a list"),
        ((["a"], ["7", "8"], ["math"], ["2"]), ValueError, "1 uids, 2 completions"),
        ((["a"], [None], ["math"], ["2"]), TypeError, "completions[0]"),
        (([["a"]], ["7"], ["math"], ["2"]), TypeError, "uids[0]"),
    ],
)
def test_group_answer_classes_names_a_bad_argument(
    arguments: tuple[Any, ...], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=re.escape(names)):
        group_answer_classes(*arguments, url=URL)
