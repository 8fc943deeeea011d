"""BaseBackend's defaults: reference parsing, lifecycle, no classes, a version derived from its module."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from reward_server.backends.base import BaseBackend, Verdict, classes_by_answer_key
from reward_server.backends.rules_version import rules_version
from reward_server.schemas import Status
from reward_server.settings import RewardSettings

SETTINGS = RewardSettings(math_workers=1)


class WordReference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str

    @field_validator("answer")
    @classmethod
    def _short_enough(cls, answer: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_chars")
        if limit is not None and len(answer) > limit:
            raise ValueError(f"longer than {limit} characters")
        return answer


class WordBackend(BaseBackend[WordReference]):
    name = "word"
    description = "correct when the completion is the answer"
    reference_model = WordReference

    async def grade(self, reference: WordReference, completions: Sequence[str]) -> list[Verdict]:
        return [
            Verdict(Status.CORRECT if text == reference.answer else Status.INCORRECT, text, text)
            for text in completions
        ]


def test_grade_is_the_one_method_to_write() -> None:
    class Incomplete(BaseBackend[WordReference]):
        name = "incomplete"

    with pytest.raises(TypeError, match="grade"):
        Incomplete(SETTINGS)  # type: ignore[abstract]


def test_the_class_is_a_factory_of_the_settings() -> None:
    assert WordBackend(SETTINGS).settings is SETTINGS


def test_parse_reference_validates_with_the_model_and_the_context() -> None:
    backend = WordBackend(SETTINGS)
    assert backend.parse_reference({"answer": "four"}) == WordReference(answer="four")
    with pytest.raises(ValidationError, match="extra"):
        backend.parse_reference({"answer": "four", "gold": "4"})
    backend.reference_context = {"max_chars": 3}
    with pytest.raises(ValidationError, match="longer than 3"):
        backend.parse_reference({"answer": "four"})


async def test_ready_between_start_and_close() -> None:
    backend = WordBackend(SETTINGS)
    assert not backend.ready
    await backend.start()
    assert backend.ready
    await backend.close()
    assert not backend.ready


async def test_no_answer_classes_by_default() -> None:
    backend = WordBackend(SETTINGS)
    reference = WordReference(answer="4")
    verdicts = await backend.grade(reference, ["4", "5"])
    assert await backend.answer_classes(reference, verdicts, memo=None) == [None, None]  # type: ignore[arg-type]


def test_version_is_derived_from_the_module_of_the_class() -> None:
    assert WordBackend(SETTINGS).version == rules_version("0.1.0", [__name__])

    class Bumped(WordBackend):
        human_version = "2.0.0"

    assert Bumped(SETTINGS).version.startswith("2.0.0+rules.")
    backend = WordBackend(SETTINGS)
    backend.version = "set-by-the-backend"  # a backend whose verdicts depend on more sets its own
    assert backend.version == "set-by-the-backend"


def test_classes_by_answer_key() -> None:
    verdicts = [
        Verdict(Status.CORRECT, "4", "4"),
        Verdict(Status.NO_ANSWER),
        Verdict(Status.INCORRECT, "5", "5"),
        Verdict(Status.ERROR, "4", "4"),
        Verdict(Status.CORRECT, "4", "4"),
    ]
    assert classes_by_answer_key(verdicts) == [0, None, 1, None, 0]
