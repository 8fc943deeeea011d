"""`POST /compat/openrlhf/v1/reward`: OpenRLHF's remote reward model, graded by this server.

Point OpenRLHF (0.10.2 or later; `--remote_rm_url` before) at it with one flag:

    --reward.remote_url 'http://host:8000/compat/openrlhf/v1/reward?backend=math'

The protocol, as OpenRLHF 0.11.2 speaks it (`openrlhf/utils/agent.py`: `SingleTurnAgentExecutor.execute`
and `_fetch_rewards_via_http`; `openrlhf/trainer/ppo_utils/samples_generator.py`:
`_process_response_into_experience`):

- Request: `{"query": [prompt + response], "prompts": [prompt], "labels": [label]}`, one sample per request
  (the n samples of a prompt are n concurrent requests; clients up to 0.8 sent a rollout batch, each
  prompt's samples adjacent). The query is the tokenizer's decoding of prompt and response tokens (special
  tokens kept); the label is the dataset's `--data.label_key` column. No Authorization header; a 180 s
  timeout; 5 tries 1 s apart on any error, after which the sample has no reward and the run stops.
- Response: `{"rewards": [...], "scores": [...], "extra_logs": {...}}`. `rewards` are the samples'
  rewards; `scores` (read instead of `rewards` when present) drive dynamic filtering, which keeps a group
  when its mean score is strictly inside `--algo.dynamic_filtering_range`; each `extra_logs` value becomes a
  one-element tensor of `Experience.info`, logged as its mean over the samples: numbers only, and the same
  keys in every answer (OpenRLHF concatenates them across samples).

What this route does:

- Completion: the query minus its prompt. A query that does not start with its prompt is refused (422
  naming `query.<i>`): grading the whole query could grade a `\\boxed{}` of a few-shot prompt. The
  end-of-sequence token the query ends with (OpenRLHF keeps special tokens) is cut off: after a closing code
  fence, "```<|im_end|>" hid the program (`strip_end_tokens`).
- Label: `backend=math`: the gold answer (a string or a number); `backend=code`: JSON tests
  (`label_reference`); another backend: its reference, a JSON object. A label that is a JSON object is the
  reference as it is, for any backend (e.g. `{"problem_id": ...}`).
- Groups: the samples of one request with the same prompt and label are one group (answer classes, each
  distinct completion graded once). Across requests the result cache answers a completion graded before.
- Values: `rewards` are the server's (REWARD_REWARD_CORRECT, REWARD_REWARD_INCORRECT); `scores` are 1 for
  a correct sample, else 0; `extra_logs` holds `ia_accuracy`, `ia_error_rate` and `ia_no_answer_rate`, the
  fractions of the request's samples that were correct, ungradable, without an answer.
- `on_error`, for a sample our infrastructure could not grade (OpenRLHF cannot drop a sample):
  - `fail` (default): 503 naming the samples. Nothing wrong is cached, so OpenRLHF's retries grade them
    again; if all fail, the run stops.
  - `nan`: reward and score NaN (the JSON literal `NaN`, which OpenRLHF's parser reads). OpenRLHF's own
    estimators do not handle NaN: rloo, group_norm, reinforce_baseline and dr_grpo make the sample's whole
    group NaN, gae and reinforce whiten the batch with a NaN mean; dynamic filtering drops the group. Use it
    only with an estimator that drops NaN samples.
  - `incorrect`: the incorrect reward and score 0, so an infrastructure failure trains as a wrong answer.
    That breaks this server's rule that an `error` never becomes a reward: opt in knowingly.
- Auth: REWARD_API_KEYS apply. OpenRLHF cannot send a header, so its URL carries the key as the password of
  HTTP Basic auth, which aiohttp sends (`http://openrlhf:<key>@host:8000/compat/...`; see `api.auth`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reward_server.api.deps import PLAIN_BODY, BodyReader, Service
from reward_server.api.request_body import RequestRules, parse_json, returns_refusal, validate_body
from reward_server.errors import BackendNotFound, BadRequest, GradingFailed
from reward_server.grading import MAX_FIELDS, error_message
from reward_server.schemas import (
    ErrorResponse,
    GradeGroup,
    GradeRequest,
    GradeResponse,
    RewardSpec,
    Status,
    scrub_surrogates,
)

log = logging.getLogger(__name__)
# The end-of-sequence texts of common tokenizers: <|...|> (Qwen, Llama 3, Phi, GPT), <｜...｜> (DeepSeek),
# </s> (Llama 2, Mistral), <eos> and <end_of_turn> (Gemma).
END_TOKEN = re.compile(r"(?:<\|[^<>|\s]{1,64}\|>|<｜[^<>｜\s]{1,64}｜>|</s>|<eos>|<end_of_turn>)\Z")
MAX_END_TOKENS = 4  # vLLM stops at the first end-of-sequence token: one, in practice
router = APIRouter(prefix="/compat/openrlhf/v1", tags=["compat"])

OnError = Literal["fail", "nan", "incorrect"]
LABEL_FORMS = (
    'JSON tests: TACO\'s {"inputs": [...], "outputs": [...], "fn_name"?: ...}, a list of '
    '{"input": ..., "output": ...}, or a code reference object (see GET /v1/backends)'
)


class OpenRLHFRewardRequest(BaseModel):
    """Body of OpenRLHF's remote reward-model request; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    query: list[str] = Field(
        ..., min_length=1, description="Each sample's prompt and response, as OpenRLHF decodes them."
    )
    prompts: list[str] = Field(..., description="Each sample's prompt: the start of its query.")
    labels: list[Any] = Field(
        ..., description="Each sample's label (`--data.label_key`): the gold answer, or JSON tests for code."
    )


class OpenRLHFRewardResponse(BaseModel):
    """Body of the answer, in the order of the request's samples."""

    rewards: list[float] = Field(..., description="Each sample's reward; NaN only with on_error=nan.")
    scores: list[float] = Field(
        ..., description="1 for a correct sample, else 0 (NaN only with on_error=nan): dynamic filtering."
    )
    extra_logs: dict[str, float] = Field(
        ..., description="ia_accuracy, ia_error_rate, ia_no_answer_rate: fractions of the request's samples."
    )


@dataclass(frozen=True)
class Converted:
    """A compat request as one `GradeRequest`.

    `slots[i]` is sample i's (group, position in the group); `first[g]` is the first sample of group g,
    whose label errors in g's reference are reported at; `wrapped[g]` is the key its label was put under in
    the reference (dropped from those errors' locations), None when the label is the reference.
    """

    request: GradeRequest
    slots: list[tuple[int, int]]
    first: list[int]
    wrapped: list[str | None]

    def relocate(self, exc: BadRequest) -> BadRequest:
        """`exc` (raised by the grading service about `groups.<g>.reference`) located at the label instead."""
        fields = [self._relocated(field) for field in exc.fields]
        if fields == exc.fields:
            return exc
        where = ".".join(map(str, fields[0]["loc"]))
        return type(exc)(f"invalid label at {where}: {fields[0].get('msg', 'invalid')}", fields)

    def _relocated(self, field: dict[str, Any]) -> dict[str, Any]:
        loc = list(field.get("loc", []))
        if len(loc) < 4 or loc[:2] != ["body", "groups"] or loc[3] != "reference":
            return field
        group = int(loc[2])
        return {**field, "loc": ["body", "labels", self.first[group], *_unwrap(loc[4:], self.wrapped[group])]}


def strip_end_tokens(completion: str) -> str:
    """`completion` without the end-of-sequence tokens it ends with (and whitespace after them).

    Example:
        >>> strip_end_tokens("```python\\nprint(1)\\n```<|im_end|>")
        '```python\\nprint(1)\\n```'
    """
    text = completion
    for _ in range(MAX_END_TOKENS):
        trimmed = text.rstrip()
        match = END_TOKEN.search(trimmed, max(0, len(trimmed) - 80))  # only the end is searched
        if match is None:
            break
        text = trimmed[: match.start()]
    return text


def label_reference(backend: str, label: Any) -> tuple[dict[str, Any], str | None]:
    """The reference a label stands for, and the key the label was put under (None: the label is it).

    Args:
        backend: the backend named by the URL.
        label: one element of `labels`, as JSON gave it.

    Returns:
        `(reference, key)`, validated later against the backend's reference model.

    Raises:
        ValueError: why the label cannot be a reference of `backend` (the caller names the field).

    Example:
        >>> label_reference("code", '{"inputs": ["1\\\\n"], "outputs": ["1\\\\n"]}')
        ({'input_output': {'inputs': ['1\\n'], 'outputs': ['1\\n']}}, 'input_output')
    """
    if isinstance(label, dict):
        return label, None
    if backend == "math":
        if isinstance(label, str):
            return {"answer": scrub_surrogates(label)}, "answer"
        if isinstance(label, int | float) and not isinstance(label, bool):
            if isinstance(label, float) and not math.isfinite(label):  # 1e999 reads as inf: the gold "inf"
                raise ValueError(f"must be a finite number, not {label} (1e999 reads as inf)")
            return {"answer": str(label)}, "answer"
        raise ValueError("must be the gold answer, a string (OpenRLHF's --data.label_key column)")
    value = label
    if isinstance(label, str):
        try:
            value = json.loads(label)
        except (ValueError, RecursionError) as exc:
            expected = LABEL_FORMS if backend == "code" else "a JSON object (the backend's reference)"
            raise ValueError(f"must be {expected}; not valid JSON: {exc}") from None
    if backend == "code":
        if isinstance(value, list):
            return {"tests": value}, "tests"
        if isinstance(value, dict):
            return (
                ({"input_output": value}, "input_output")
                if {"inputs", "outputs"} & set(value)
                else (value, None)
            )
        raise ValueError(f"must be {LABEL_FORMS}")
    if isinstance(value, dict):
        return value, None
    raise ValueError("must be a JSON object: this backend's reference (see GET /v1/backends)")


@returns_refusal
def read_openrlhf_request(body: bytes, rules: RequestRules, backend: str) -> Converted:
    """The body as a validated `GradeRequest` for `backend`, or the BadRequest (naming the field) that refuses
    it: returned, not raised, since it may run in a body-reader process (`RequestBodyReader.read_as`)."""
    return _convert(_validate(parse_json(body)), backend, rules)


def _validate(value: Any) -> OpenRLHFRewardRequest:
    payload = validate_body(OpenRLHFRewardRequest, value)
    for name, values in (("prompts", payload.prompts), ("labels", payload.labels)):
        if len(values) != len(payload.query):
            message = f"{len(values)} {name} for {len(payload.query)} queries: one per sample"
            raise BadRequest(
                f"invalid request: body.{name}: {message}", [{"loc": ["body", name], "msg": message}]
            )
    return payload


def _convert(payload: OpenRLHFRewardRequest, backend: str, rules: RequestRules) -> Converted:
    samples = len(payload.query)
    if samples > rules.max_completions:
        message = (
            f"{samples} samples in one request; the limit is {rules.max_completions} "
            "(REWARD_MAX_COMPLETIONS_PER_REQUEST)"
        )
        raise BadRequest(
            f"invalid request: body.query: {message}", [{"loc": ["body", "query"], "msg": message}]
        )
    unprefixed = [
        i
        for i, (query, prompt) in enumerate(zip(payload.query, payload.prompts, strict=True))
        if not query.startswith(prompt)
    ]
    if unprefixed:
        message = "does not start with its prompt (`prompts` at the same index)"
        raise BadRequest(
            f"invalid request: body.query.{unprefixed[0]}: the query {message} ({len(unprefixed)} of "
            f"{samples} samples). The completion graded is the query minus its prompt: grading the whole "
            "query could grade an answer of a few-shot prompt",
            [{"loc": ["body", "query", i], "msg": message} for i in unprefixed[:MAX_FIELDS]],
        )
    group_of: dict[tuple[str, str], int] = {}
    first: list[int] = []
    completions: list[list[str]] = []
    slots: list[tuple[int, int]] = []
    for i, (query, prompt, label) in enumerate(
        zip(payload.query, payload.prompts, payload.labels, strict=True)
    ):
        group = group_of.setdefault((prompt, json.dumps(label, sort_keys=True)), len(group_of))
        if group == len(first):
            first.append(i)
            completions.append([])
        slots.append((group, len(completions[group])))
        completions[group].append(strip_end_tokens(query[len(prompt) :]))
    if len(first) > rules.max_groups:
        message = (
            f"{len(first)} distinct prompt and label pairs in one request; the limit is {rules.max_groups} "
            "(REWARD_MAX_GROUPS_PER_REQUEST)"
        )
        raise BadRequest(
            f"invalid request: body.prompts: {message}", [{"loc": ["body", "prompts"], "msg": message}]
        )
    model, context = rules.references[backend]
    groups, wrapped = [], []
    for group, index in enumerate(first):
        try:
            reference, key = label_reference(backend, payload.labels[index])
        except ValueError as exc:
            raise BadRequest(
                f"invalid request: body.labels.{index}: {exc}",
                [{"loc": ["body", "labels", index], "msg": str(exc)}],
            ) from None
        try:
            model.model_validate(reference, context=context)  # the backend's caps, off the event loop
        except ValidationError as exc:
            raise _label_error(index, backend, key, exc) from None
        groups.append(
            GradeGroup(
                group_id=str(group), backend=backend, reference=reference, completions=completions[group]
            )
        )
        wrapped.append(key)
    return Converted(GradeRequest(groups=groups), slots, first, wrapped)


def _unwrap(loc: list[Any], key: str | None) -> list[Any]:
    return loc[1:] if key is not None and loc[:1] == [key] else loc


def _label_error(index: int, backend: str, key: str | None, exc: ValidationError) -> BadRequest:
    fields = [
        {"loc": ["body", "labels", index, *_unwrap(list(err["loc"]), key)], "msg": error_message(err)}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:MAX_FIELDS]
    ]
    where = ".".join(map(str, fields[0]["loc"]))
    return BadRequest(f"invalid label for backend {backend!r} at {where}: {fields[0]['msg']}", fields)


def openrlhf_answer(
    converted: Converted, graded: GradeResponse, on_error: OnError, reward: RewardSpec
) -> dict[str, Any]:
    """OpenRLHF's response body for `graded`; raises GradingFailed when a sample is `error` and `on_error`
    is `fail`."""
    rewards: list[float] = []
    scores: list[float] = []
    failed: list[tuple[int, str]] = []
    correct = no_answer = 0
    for index, (group, position) in enumerate(converted.slots):
        result = graded.groups[group].results[position]
        if result.status is Status.ERROR:
            failed.append((index, result.detail or "not graded"))
            value = reward.incorrect if on_error == "incorrect" else math.nan
            rewards.append(value)
            scores.append(0.0 if on_error == "incorrect" else math.nan)
            continue
        assert result.reward is not None  # only an `error` has none
        rewards.append(result.reward)
        scores.append(1.0 if result.status is Status.CORRECT else 0.0)
        correct += result.status is Status.CORRECT
        no_answer += result.status is Status.NO_ANSWER
    samples = len(converted.slots)
    if failed and on_error == "fail":
        index, detail = failed[0]
        raise GradingFailed(
            f"{len(failed)} of {samples} samples could not be graded (status error; first: "
            f"body.query.{index}: {detail}). OpenRLHF cannot drop a sample, so nothing is returned "
            "(on_error=fail): retry the request; on_error=nan or on_error=incorrect answer instead",
            [{"loc": ["body", "query", i], "msg": why} for i, why in failed[:MAX_FIELDS]],
        )
    return {
        "rewards": rewards,
        "scores": scores,
        "extra_logs": {
            "ia_accuracy": correct / samples,
            "ia_error_rate": len(failed) / samples,
            "ia_no_answer_rate": no_answer / samples,
        },
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 413, 415, 422, 503)
}
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": OpenRLHFRewardRequest.model_json_schema()}},
    }
}


@router.post(
    "/reward",
    response_model=OpenRLHFRewardResponse,
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    dependencies=PLAIN_BODY,
)
async def reward(
    request: Request,
    service: Service,
    reader: BodyReader,
    backend: Annotated[str, Query(min_length=1, max_length=128, description="Backend name: math, code, ...")],
    on_error: Annotated[
        OnError,
        Query(description="A sample that could not be graded: fail (503), nan, or incorrect (its reward)."),
    ] = "fail",
) -> Response:
    """Grade OpenRLHF's remote reward-model request (see this module's docstring for the protocol)."""
    try:
        if backend not in service.backends:
            message = f"unknown backend {backend!r}; valid backends: {', '.join(sorted(service.backends))}"
            raise BackendNotFound(message, [{"loc": ["query", "backend"], "msg": message}])
        converted = await reader.read_as(
            partial(read_openrlhf_request, backend=backend), await request.body()
        )
        try:
            graded = await service.grade(converted.request)
        except BadRequest as exc:
            raise converted.relocate(exc) from None
        answer = openrlhf_answer(converted, graded, on_error, service.default_reward)
    except (BadRequest, GradingFailed) as exc:
        # OpenRLHF logs only the status (at INFO): what was wrong is said here.
        log.warning("openrlhf compat: %s %s", exc.http_status, exc)
        raise
    # NaN is the JSON literal `NaN` (on_error=nan): not standard JSON, but what Python's json reads.
    content = await asyncio.to_thread(json.dumps, answer, allow_nan=True)
    return Response(content, media_type="application/json")
