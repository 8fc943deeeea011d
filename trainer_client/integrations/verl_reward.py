"""verl reward function: grade each sample with our reward server, coalescing concurrent calls into batches.

verl 0.9's reward loop calls the reward function once per sample, as each rollout finishes
(`verl/experimental/reward_loop/reward_manager/naive.py: run_single`): awaited on the reward worker's
event loop if it is a coroutine function, else run in a thread of its executor. One HTTP request per
sample would cost a round trip and a request parse per completion, so `GradeCoalescer` gathers the calls
of one event loop that arrive within `window_ms` (or until `max_batch` samples) into one
`POST /v1/grade`, with one group per (backend, reference): samples of one prompt that arrive together are
graded as one group. Use the async `compute_score` with verl's `naive` manager. `compute_score_sync` runs
it on a private loop thread for callers that need a plain function; its callers' threads bound how many
samples wait together (verl's executor: at most 32), and verl's `remote` manager, which needs it, runs one
call at a time per actor, so nothing is batched there.

Config (verl 0.9):

    reward.custom_reward_function.path=pkg://trainer_client.integrations.verl_reward
    reward.custom_reward_function.name=compute_score        # compute_score_sync for the `remote` manager
    +reward.custom_reward_function.reward_kwargs.url=http://reward-server:8000

`reward_kwargs` (verl passes them to every call as keywords): `url` (else `$REWARD_SERVER_URL`), `backend`
(else inferred from `data_source`, see `infer_backend`), `on_error` ("raise" or "nan"), `reward` (e.g.
`{correct: 1.0, incorrect: 0.0}`; the server's values by default), `window_ms` (5), `max_batch` (4096).

Every call returns the same keys (verl builds its columns from the first sample's and fails on a missing
one): `score` (our reward), `acc` (1.0 correct, 0.0 not), `pred` (the extracted answer, "" without one),
`status` and `answer_class` (-1 without one). `acc` and `pred` feed verl's validation `mean@N`/`maj@N`.
`answer_class` is the class within the group the sample was graded in, which need not hold its prompt's
other samples: majority voting gets its classes from `verl_trainer` instead.

A sample the server failed to grade (status `error`) raises `SampleGradingError` with the server's detail,
so the run fails loudly; with `on_error="nan"` it scores NaN (and `acc` NaN), which our `ia_*` estimators
drop. verl's own estimators (grpo, rloo) would turn the whole group NaN: use "nan" with `ia_*` only.
Whatever `on_error` says, a request that fails for good (server unreachable after the client's retries, or
refused with a 4xx) raises: a server that is down must stop the run, not silently drop every sample.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import weakref
from collections.abc import Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from reward_server.schemas import CompletionResult, GradeGroup, RewardSpec, Status
from trainer_client.client import AsyncRewardClient, RewardClient
from trainer_client.errors import RewardClientError, RewardRequestError
from trainer_client.integrations._arguments import gold_number, per_sample, same_length, text

__all__ = [
    "RESULT_KEYS",
    "URL_ENV",
    "GradeCoalescer",
    "SampleGradingError",
    "aclose_coalescers",
    "compute_score",
    "compute_score_sync",
    "get_coalescer",
    "group_answer_classes",
    "infer_backend",
    "to_reference",
]


URL_ENV = "REWARD_SERVER_URL"
RESULT_KEYS = ("score", "acc", "pred", "status", "answer_class")
DEFAULT_WINDOW_MS = 5.0
# Large on purpose: a prompt's samples split across requests become several groups, which the server pays
# for per group (bench/integrations.py: 2000 samples arriving in shuffled order graded at 0.5x the batched
# rate with 256 per request, at 1.1x with 4096).
DEFAULT_MAX_BATCH = 4096
OnError = Literal["raise", "nan"]
T = TypeVar("T")

# verl's `data_source` names (its own `default_compute_score` table, lower-cased) -> our backend.
BACKEND_OF_SOURCE = {
    "math": "math",
    "lighteval/math": "math",
    "digitallearninggmbh/math-lighteval": "math",
    "huggingfaceh4/math-500": "math",
    "gsm8k": "math",
    "openai/gsm8k": "math",
    "math_dapo": "math",
    "math_dapo_reasoning": "math",
    "code": "code",
    "codecontests": "code",
    "deepmind/code_contests": "code",
    "taco": "code",
    "baai/taco": "code",
    "apps": "code",
    "codeparrot/apps": "code",
    "codeforces": "code",
}
BACKEND_OF_PREFIX = (("aime", "math"), ("numina_", "math"))
# A ground truth that is already one of our references passes through unchanged.
REFERENCE_KEYS = frozenset(
    {"answer", "problem_id", "tests", "input_output", "public_tests", "private_tests", "generated_tests"}
)
# Keywords verl itself may add to a call (reward model router); accepted and unused.
VERL_EXTRA_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
REWARD_KWARGS = frozenset({"url", "backend", "on_error", "reward", "window_ms", "max_batch"})


class SampleGradingError(RewardClientError):
    """The server could not grade a sample (status `error`); raised unless `on_error="nan"`."""


def infer_backend(data_source: str, backend: str | None = None) -> str:
    """Our backend for a verl `data_source`; an explicit `backend` wins.

    Raises:
        ValueError: an unknown data source and no `backend`.

    Example:
        >>> infer_backend("lighteval/MATH"), infer_backend("codecontests"), infer_backend("x", "math")
        ('math', 'code', 'math')
    """
    if backend:
        return backend
    name = str(data_source).strip().lower()
    if name in BACKEND_OF_SOURCE:
        return BACKEND_OF_SOURCE[name]
    for prefix, found in BACKEND_OF_PREFIX:
        if name.startswith(prefix):
            return found
    raise ValueError(
        f"no reward backend known for data_source {data_source!r}; set "
        "+reward.custom_reward_function.reward_kwargs.backend=math (or code)"
    )


def to_reference(backend: str, ground_truth: Any) -> dict[str, Any]:
    """Our reference for verl's `reward_model.ground_truth`.

    - A dict with a reference key of ours (`answer`, `problem_id`, `tests`, `input_output`, CodeContests'
      `*_tests`) passes through.
    - math: the gold answer string (GSM8K's "... #### 42" is read by the server) -> `{"answer": ...}`.
    - code: verl's `{"inputs": [...], "outputs": [...], "fn_name"?}`, a dict or its JSON string (TACO's
      `input_output`) -> `{"input_output": ...}`; the server parses and checks it.

    Example:
        >>> to_reference("code", '{"inputs": ["1\\n"], "outputs": ["2\\n"]}')
        {'input_output': '{"inputs": ["1\\n"], "outputs": ["2\\n"]}'}
    """
    ground_truth = _plain(ground_truth)
    if isinstance(ground_truth, Mapping):
        if REFERENCE_KEYS & set(ground_truth):
            return dict(ground_truth)
        if backend == "code" and {"inputs", "outputs"} <= set(ground_truth):
            return {"input_output": dict(ground_truth)}
        raise ValueError(
            f"ground_truth has keys {sorted(ground_truth)}; expected one of {sorted(REFERENCE_KEYS)}, or "
            "inputs/outputs for code"
        )
    if backend == "code":
        if not isinstance(ground_truth, str):  # None, a number: the server would refuse it, less clearly
            raise ValueError(
                "code ground_truth must be verl's tests, a dict or its JSON string, got "
                f"{type(ground_truth).__name__}"
            )
        return {"input_output": ground_truth}
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, str | int | float):
        raise ValueError(f"math ground_truth must be a string, got {type(ground_truth).__name__}")
    if isinstance(ground_truth, str):
        return {"answer": ground_truth}
    return {"answer": gold_number("math ground_truth", ground_truth)}


def _plain(value: Any) -> Any:
    """`value` with numpy arrays and scalars (parquet rows may hold them) turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return _plain(value.tolist())
    return value


def to_result(result: CompletionResult, on_error: OnError) -> dict[str, Any]:
    """verl's dict for one graded sample: always the keys of `RESULT_KEYS`."""
    if result.status is Status.ERROR or result.reward is None:
        if on_error != "nan":
            raise SampleGradingError(
                f"the reward server could not grade a sample: {result.detail or 'no detail'} (status error; "
                "set reward_kwargs.on_error=nan to drop such samples with the ia_* estimators)"
            )
        score, acc = math.nan, math.nan
    else:
        score, acc = float(result.reward), 1.0 if result.status is Status.CORRECT else 0.0
    return {
        "score": score,
        "acc": acc,
        "pred": result.answer or "",
        "status": result.status.value,
        "answer_class": -1 if result.answer_class is None else result.answer_class,
    }


# --------------------------------------------------------------------------------------------------------
# The coalescer


@dataclass
class _Sample:
    backend: str
    reference: dict[str, Any]
    key: tuple[str, str]  # (backend, canonical JSON of the reference): samples that share a group
    completion: str
    future: asyncio.Future[CompletionResult]


class GradeCoalescer:
    """Batches single-sample grading calls made on one event loop into `/v1/grade` requests.

    The first sample of a batch opens a window of `window_ms`; the batch goes out when the window closes or
    it holds `max_batch` samples, whichever is first, with one group per (backend, reference). Batches are
    sent concurrently (the client caps the requests in flight). A coalescer belongs to the event loop of its
    first call (its `AsyncRewardClient` does): `get_coalescer` keeps one per loop, so that callers never
    hand work between threads, which costs more than the batching saves.

    Args:
        url: The reward server.
        window_ms: How long the first sample of a batch waits for others.
        max_batch: Samples per request at most.
        reward: Reward values sent with every request; the server's when None.
        **client_kwargs: Passed to `AsyncRewardClient` (e.g. `transport`, `max_retries`, `api_key`).

    Example:
        coalescer = GradeCoalescer("http://127.0.0.1:8000")
        result = await coalescer.grade("math", {"answer": "2"}, "so $\\boxed{2}$")  # a CompletionResult
        await coalescer.aclose()
    """

    def __init__(
        self,
        url: str,
        *,
        window_ms: float = DEFAULT_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        reward: RewardSpec | None = None,
        **client_kwargs: Any,
    ) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ValueError("window_ms must be >= 0 and max_batch >= 1")
        self.url = url
        self.window_s = window_ms / 1000
        self.max_batch = max_batch
        self.reward = reward
        self.requests_sent = 0  # HTTP grade calls, for tests and benches
        client_kwargs.setdefault("max_groups_per_request", max_batch)  # one batch, one request
        self._client_kwargs = client_kwargs
        self._client: AsyncRewardClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Sample] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def grade(self, backend: str, reference: dict[str, Any], completion: str) -> CompletionResult:
        """Grade one completion in the next batch.

        Raises:
            RewardClientError: the batch's request failed for good (RewardServerUnavailable) or this
                sample's group was refused (RewardRequestError).
            RuntimeError: called from another event loop than the first call's.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a GradeCoalescer serves one event loop; get_coalescer() gives one per loop")
        key = (backend, json.dumps(reference, sort_keys=True, separators=(",", ":")))
        future: asyncio.Future[CompletionResult] = loop.create_future()
        self._pending.append(_Sample(backend, reference, key, completion, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await future

    async def aclose(self) -> None:
        """Send what is pending, wait for the requests in flight and close the client."""
        self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Sample]) -> None:
        by_key: dict[tuple[str, str], list[_Sample]] = {}
        for sample in batch:
            by_key.setdefault(sample.key, []).append(sample)
        await self._send_groups(list(by_key.values()))

    async def _send_groups(self, groups: list[list[_Sample]]) -> None:
        if self._client is None:
            self._client = AsyncRewardClient(self.url, **self._client_kwargs)
        try:
            request = [
                GradeGroup(
                    group_id=f"g{i}",
                    backend=samples[0].backend,
                    reference=samples[0].reference,
                    completions=[sample.completion for sample in samples],
                )
                for i, samples in enumerate(groups)
            ]
            self.requests_sent += 1
            response = await self._client.grade(request, reward=self.reward)
        except RewardRequestError as exc:
            if len(groups) > 1:
                # One bad reference must not fail its neighbours: send each group alone, so only the
                # samples of the refused one get the 4xx.
                await asyncio.gather(*(self._send_groups([group]) for group in groups))
                return
            _settle(groups, exc)
        except Exception as exc:  # the batch's callers get the exception (retries are exhausted)
            _settle(groups, exc)
        else:
            for samples, graded in zip(groups, response.groups, strict=True):
                for sample, result in zip(samples, graded.results, strict=True):
                    if not sample.future.done():  # its caller may have been cancelled
                        sample.future.set_result(result)


def _settle(groups: list[list[_Sample]], exc: BaseException) -> None:
    for samples in groups:
        for sample in samples:
            if not sample.future.done():
                sample.future.set_exception(exc)


# One coalescer per event loop and settings; a loop that is garbage-collected takes its coalescers along.
_COALESCERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], GradeCoalescer]] = (
    weakref.WeakKeyDictionary()
)


def get_coalescer(
    url: str,
    *,
    window_ms: float = DEFAULT_WINDOW_MS,
    max_batch: int = DEFAULT_MAX_BATCH,
    reward: RewardSpec | None = None,
) -> GradeCoalescer:
    """The running event loop's coalescer for these settings, created on first use (call it from a
    coroutine)."""
    loop = asyncio.get_running_loop()
    key = (url, window_ms, max_batch, None if reward is None else reward.model_dump_json())
    coalescers = _COALESCERS.setdefault(loop, {})
    coalescer = coalescers.get(key)
    if coalescer is None:
        coalescer = coalescers[key] = GradeCoalescer(
            url, window_ms=window_ms, max_batch=max_batch, reward=reward
        )
    return coalescer


async def aclose_coalescers() -> None:
    """Close the running loop's coalescers (their connections); later calls make new ones."""
    for coalescer in _COALESCERS.pop(asyncio.get_running_loop(), {}).values():
        await coalescer.aclose()


class _LoopThread:
    """An event loop in a daemon thread, where the sync reward function runs the async one."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="reward-coalescer", daemon=True).start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


_LOOP_THREAD: _LoopThread | None = None
_LOOP_THREAD_LOCK = threading.Lock()


def _loop_thread() -> _LoopThread:
    global _LOOP_THREAD
    with _LOOP_THREAD_LOCK:
        if _LOOP_THREAD is None or _LOOP_THREAD.pid != os.getpid():  # a forked child starts its own
            _LOOP_THREAD = _LoopThread()
        return _LOOP_THREAD


# --------------------------------------------------------------------------------------------------------
# The reward functions verl calls


@dataclass(frozen=True)
class _Call:
    coalescer: GradeCoalescer
    backend: str
    reference: dict[str, Any]
    on_error: OnError


def _prepare(data_source: str, ground_truth: Any, kwargs: dict[str, Any]) -> _Call:
    """Check the call and find its coalescer (on the running loop)."""
    unknown = sorted(set(kwargs) - REWARD_KWARGS - VERL_EXTRA_KWARGS)
    if unknown:
        raise TypeError(f"unknown reward_kwargs {unknown}; expected some of {sorted(REWARD_KWARGS)}")
    url = kwargs.get("url") or os.environ.get(URL_ENV)
    if not url:
        raise ValueError(
            f"no reward server URL: set +reward.custom_reward_function.reward_kwargs.url=http://host:port "
            f"or ${URL_ENV} in the reward workers' environment"
        )
    on_error = kwargs.get("on_error", "raise")
    if on_error not in ("raise", "nan"):
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    given_backend = kwargs.get("backend")
    if given_backend is not None and not isinstance(given_backend, str):
        raise TypeError(f"reward_kwargs.backend must be a backend name, got {given_backend!r}")
    backend = infer_backend(data_source, given_backend)
    coalescer = get_coalescer(
        str(url),
        window_ms=_number("window_ms", kwargs, DEFAULT_WINDOW_MS, float),
        max_batch=_number("max_batch", kwargs, DEFAULT_MAX_BATCH, int),
        reward=_reward_spec(kwargs.get("reward")),
    )
    return _Call(coalescer, backend, to_reference(backend, ground_truth), on_error)


def _number(name: str, kwargs: dict[str, Any], default: float, kind: type[float] | type[int]) -> Any:
    try:
        return kind(kwargs.get(name, default))
    except (TypeError, ValueError):
        raise ValueError(f"reward_kwargs.{name} must be a number, got {kwargs[name]!r}") from None


def _reward_spec(reward: Any) -> RewardSpec | None:
    if reward is None:
        return None
    if not isinstance(reward, Mapping):
        raise TypeError(f"reward_kwargs.reward must be a mapping such as {{correct: 1.0}}, got {reward!r}")
    try:
        return RewardSpec.model_validate(dict(reward))
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"reward_kwargs.reward: {fields}") from None


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **reward_kwargs: Any,
) -> dict[str, Any]:
    """Grade one verl sample with the reward server (batched with concurrent calls); verl awaits it.

    Args:
        data_source: The parquet row's `data_source`; picks the backend unless `backend` is given.
        solution_str: The decoded response.
        ground_truth: `reward_model.ground_truth`: a gold answer (math) or verl's code tests.
        extra_info: verl's per-row extras; unused.
        **reward_kwargs: `url`, `backend`, `on_error`, `reward`, `window_ms`, `max_batch` (module docstring).

    Returns:
        `{"score", "acc", "pred", "status", "answer_class"}`, e.g.
        `{"score": 1.0, "acc": 1.0, "pred": "2", "status": "correct", "answer_class": 0}`.

    Raises:
        SampleGradingError: the server could not grade the sample and `on_error` is "raise".
        RewardClientError: the request failed after retries (RewardServerUnavailable) or was refused (4xx).
        ValueError, TypeError: bad `reward_kwargs`, data source or ground truth.
    """
    # Checked here, not in the batch's request: one bad sample would fail every sample batched with it.
    text("solution_str", solution_str)
    call = _prepare(data_source, ground_truth, reward_kwargs)
    result = await call.coalescer.grade(call.backend, call.reference, solution_str)
    return to_result(result, call.on_error)


def compute_score_sync(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **reward_kwargs: Any,
) -> dict[str, Any]:
    """`compute_score` for callers that need a plain function (verl's `remote` manager asserts one).

    It runs `compute_score` on a private event loop thread, so concurrent calls from several threads are
    batched together. Never call it on a thread that runs an event loop: it blocks until the sample is
    graded (await `compute_score` there).
    """
    coroutine = compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)
    return _loop_thread().run(coroutine)


def group_answer_classes(
    uids: Sequence[Hashable],
    completions: Sequence[str],
    data_sources: Sequence[str],
    ground_truths: Sequence[Any],
    *,
    url: str | None = None,
    backend: str | None = None,
    **client_kwargs: Any,
) -> list[int]:
    """Each row's answer class within its uid group, from the server grading every group as one group.

    verl grades sample by sample, so the `answer_class` each reward call returns belongs to whatever group
    the sample happened to be batched in, and classes of one prompt's samples are not comparable. Majority
    voting needs them comparable: this grades the rows of each uid together (one request; the server's
    cache makes verdicts it has seen free) and returns the server's classes, -1 for no answer.

    Args:
        uids, completions, data_sources, ground_truths: One entry per row; a group's reference is taken from
            its first row.
        url: The reward server; `$REWARD_SERVER_URL` when None.
        backend: Overrides the backend inferred from each group's data source.
        **client_kwargs: Passed to `RewardClient` (e.g. `transport`).

    Returns:
        int classes, one per row.

    Example:
        >>> group_answer_classes(["a", "a", "b"], ["$\\boxed{2}$", "$\\boxed{2}$", "$\\boxed{3}$"],
        ...                      ["math"] * 3, ["2", "2", "4"], url="http://127.0.0.1:8000")
        [0, 0, 0]
    """
    uids, completions = per_sample("uids", uids, "row"), per_sample("completions", completions, "row")
    data_sources = per_sample("data_sources", data_sources, "row")
    ground_truths = per_sample("ground_truths", ground_truths, "row")
    same_length(
        "row", uids=uids, completions=completions, data_sources=data_sources, ground_truths=ground_truths
    )
    count = len(uids)
    for row, completion in enumerate(completions):
        text(f"completions[{row}]", completion)
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise ValueError(f"no reward server URL: pass url= or set ${URL_ENV}")
    groups: dict[Hashable, list[int]] = {}
    for row, uid in enumerate(uids):
        if not isinstance(uid, Hashable):
            raise TypeError(f"uids[{row}] must be hashable (a string or a number), not {type(uid).__name__}")
        groups.setdefault(uid, []).append(row)
    request = []
    for g, rows in enumerate(groups.values()):
        first = rows[0]
        group_backend = infer_backend(data_sources[first], backend)
        request.append(
            GradeGroup(
                group_id=f"g{g}",
                backend=group_backend,
                reference=to_reference(group_backend, ground_truths[first]),
                completions=[completions[row] for row in rows],
            )
        )
    client_kwargs.setdefault("max_groups_per_request", max(len(request), 1))
    classes = [-1] * count
    if not request:
        return classes
    with RewardClient(url, **client_kwargs) as client:
        response = client.grade(request)
    for rows, graded in zip(groups.values(), response.groups, strict=True):
        for row, result in zip(rows, graded.results, strict=True):
            classes[row] = -1 if result.answer_class is None else result.answer_class
    return classes
