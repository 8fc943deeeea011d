"""Wire schemas of the reward server, version 1 (`POST /v1/grade`).

This module imports nothing but pydantic: the training client imports it to build requests and read
responses, so the trainer machine needs neither FastAPI nor sympy. Each backend validates its own
`reference` (see `reward_server.backends`); here a reference is an opaque JSON object.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "v1"


class Status(StrEnum):
    """Outcome of grading one completion."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NO_ANSWER = "no_answer"  # nothing extractable; rewarded as incorrect
    ERROR = "error"  # our infrastructure failed: reward is null and the trainer drops the sample


def scrub_surrogates(text: str) -> str:
    """Replace lone UTF-16 surrogates (valid in JSON, not in UTF-8) by '?', so that echoing them back
    cannot fail; every other character is kept."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


class RewardSpec(BaseModel):
    """Reward values given per status. `no_answer` is graded as incorrect unless set.

    Rewards must be finite: a NaN would reach the trainer as a dropped sample (or poison its mean), and an
    infinity would blow up its advantages. (Python's json reads `NaN` and `Infinity`, and `1e999` is inf.)
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    correct: float = Field(1.0, description="Reward of a correct completion.")
    incorrect: float = Field(-1.0, description="Reward of an incorrect completion.")
    no_answer: float | None = Field(
        None, description="Reward of a completion with no extractable answer; defaults to `incorrect`."
    )

    def for_status(self, status: Status) -> float | None:
        """Return the reward of `status`; None for `error`, which must never become a reward."""
        if status is Status.CORRECT:
            return self.correct
        if status is Status.NO_ANSWER and self.no_answer is not None:
            return self.no_answer
        if status is Status.ERROR:
            return None
        return self.incorrect


class GradeGroup(BaseModel):
    """The k (or n) completions of one prompt, with the reference they are graded against."""

    model_config = ConfigDict(extra="forbid")

    group_id: str = Field(..., max_length=512, description="Caller's id, echoed back.")
    backend: str = Field(..., min_length=1, max_length=128, description="Backend name, e.g. `math`.")
    reference: dict[str, Any] = Field(
        ..., description='Backend-specific reference, e.g. `{"answer": "\\\\frac{1}{2}"}` for math.'
    )
    completions: list[str] = Field(..., description="Completions to grade, in order.")

    @field_validator("group_id")
    @classmethod
    def _scrub_id(cls, group_id: str) -> str:
        return scrub_surrogates(group_id)

    @field_validator("completions")
    @classmethod
    def _scrub_completions(cls, completions: list[str]) -> list[str]:
        return [scrub_surrogates(text) for text in completions]


class GradeRequest(BaseModel):
    """Body of `POST /v1/grade`."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(
        None, max_length=256, description="Optional idempotency key; retries are free either way."
    )
    groups: list[GradeGroup] = Field(..., description="Groups to grade; the response keeps their order.")
    reward: RewardSpec | None = Field(None, description="Reward values; the server's settings by default.")

    @field_validator("request_id")
    @classmethod
    def _scrub_request_id(cls, request_id: str | None) -> str | None:
        return None if request_id is None else scrub_surrogates(request_id)

    @field_validator("groups")
    @classmethod
    def _unique_group_ids(cls, groups: list[GradeGroup]) -> list[GradeGroup]:
        seen: set[str] = set()
        for group in groups:
            if group.group_id in seen:
                raise ValueError(f"duplicate group_id {group.group_id!r}")
            seen.add(group.group_id)
        return groups


class TestSummary(BaseModel):
    """What the code backend reports about the tests of one completion."""

    __test__ = False  # not a pytest class

    passed: int
    total: int
    first_failure: int | None = Field(None, description="Index of the first failing test.")
    failure_kind: str | None = Field(
        None, description="wrong_answer, timeout, runtime_error, memory or output_limit."
    )


class CompletionResult(BaseModel):
    """The verdict on one completion."""

    # A non-finite reward is never sent (the server) nor accepted (the client).
    model_config = ConfigDict(allow_inf_nan=False)

    status: Status
    reward: float | None = Field(..., description="Null exactly when status is `error`.")
    answer: str | None = Field(None, description="The extracted answer in canonical form, if any.")
    answer_class: int | None = Field(
        None, description="Equivalent answers of a group share a class; null without an answer."
    )
    detail: str | None = Field(None, description="Why, for errors and timeouts.")
    tests: TestSummary | None = Field(None, description="Code backend only.")


class AnswerClass(BaseModel):
    """One answer class of a group, indexed by `answer_class`."""

    answer: str = Field(..., description="The class representative (its first answer).")
    count: int = Field(..., description="How many completions of the group fall in this class.")
    correct: bool


class GroupResult(BaseModel):
    group_id: str
    results: list[CompletionResult]
    answer_classes: list[AnswerClass]
    # Optional: a server from before versioned rules does not send it.
    backend_version: str | None = Field(
        None,
        description="Version of the backend that graded the group, e.g. `0.1.0+rules.3f9a2c1b`: its human "
        "version and a hash of its rules, which changes whenever its verdicts may.",
    )


class GradeResponse(BaseModel):
    """Body of the answer to `POST /v1/grade`."""

    request_id: str | None = None
    groups: list[GroupResult]
    backends: dict[str, str] = Field(..., description="Name -> version of the backends used.")


class BackendInfo(BaseModel):
    name: str
    version: str
    description: str
    reference_schema: dict[str, Any]


class BackendsResponse(BaseModel):
    backends: list[BackendInfo]


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer."""

    error: str = Field(..., description="Machine-readable error kind.")
    message: str
    fields: list[dict[str, Any]] = Field(default_factory=list, description="Offending fields, if any.")
