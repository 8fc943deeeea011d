"""GradingService around a scripted backend: caching, dedup, errors never cached, field-named 4xx."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from reward_server.backends.base import Memo, Verdict
from reward_server.cache import MemoryCache
from reward_server.errors import BackendNotFound, BadRequest
from reward_server.grading import GradingService
from reward_server.schemas import GradeRequest, RewardSpec, Status


class EchoReference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str


class ScriptedBackend:
    """Correct when the completion equals the answer; 'boom' is an infrastructure failure."""

    name = "echo"
    version = "1"
    description = "test double"
    reference_model = EchoReference
    ready = True

    def __init__(self) -> None:
        self.graded: list[str] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def parse_reference(self, raw: dict[str, Any]) -> EchoReference:
        return EchoReference.model_validate(raw)

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        assert isinstance(reference, EchoReference)
        self.graded.extend(completions)
        return [
            Verdict(Status.ERROR, detail="sandbox down")
            if text == "boom"
            else Verdict(Status.NO_ANSWER)
            if not text
            else Verdict(Status.CORRECT if text == reference.answer else Status.INCORRECT, text, text)
            for text in completions
        ]

    async def answer_classes(
        self, reference: BaseModel, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        order: dict[str, int] = {}
        return [None if v.answer is None else order.setdefault(v.answer, len(order)) for v in verdicts]


def request(completions: list[str], **group: Any) -> GradeRequest:
    body = {"group_id": "g", "backend": "echo", "reference": {"answer": "a"}, "completions": completions}
    return GradeRequest.model_validate({"groups": [{**body, **group}]})


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def service(backend: ScriptedBackend) -> GradingService:
    return GradingService({"echo": backend}, MemoryCache(100), RewardSpec())


async def test_results_keep_order_and_map_rewards(service: GradingService) -> None:
    group = (await service.grade(request(["b", "a", "", "boom", "b"]))).groups[0]
    assert [r.status for r in group.results] == ["incorrect", "correct", "no_answer", "error", "incorrect"]
    assert [r.reward for r in group.results] == [-1.0, 1.0, -1.0, None, -1.0]
    assert [r.answer_class for r in group.results] == [0, 1, None, None, 0]
    assert [(c.answer, c.count, c.correct) for c in group.answer_classes] == [("b", 2, False), ("a", 1, True)]


async def test_repeats_are_graded_once_and_retries_not_at_all(
    service: GradingService, backend: ScriptedBackend
) -> None:
    first = await service.grade(request(["a", "b", "a", "b"]))
    assert backend.graded == ["a", "b"]
    second = await service.grade(request(["a", "b", "a", "b"]))
    assert backend.graded == ["a", "b"]
    assert second == first


async def test_infrastructure_errors_are_not_cached(
    service: GradingService, backend: ScriptedBackend
) -> None:
    await service.grade(request(["boom"]))
    await service.grade(request(["boom"]))
    assert backend.graded == ["boom", "boom"]


async def test_reference_errors_name_the_field(service: GradingService) -> None:
    with pytest.raises(BadRequest) as info:
        await service.grade(request(["a"], reference={"answr": "a"}))
    locs = [field["loc"] for field in info.value.fields]
    assert ["body", "groups", 0, "reference", "answer"] in locs
    assert ["body", "groups", 0, "reference", "answr"] in locs


async def test_a_reference_json_cannot_hold_is_refused_naming_it(service: GradingService) -> None:
    # A plug-in's reference model may let a lone surrogate through; hashing it for the cache key raised.
    with pytest.raises(BadRequest, match="cannot be written as JSON") as info:
        await service.grade(request(["a"], reference={"answer": "\ud800"}))
    assert info.value.fields[0]["loc"] == ["body", "groups", 0, "reference"]


async def test_unknown_backend_names_the_field(service: GradingService) -> None:
    with pytest.raises(BackendNotFound) as info:
        await service.grade(request(["a"], backend="math"))
    assert info.value.fields[0]["loc"] == ["body", "groups", 0, "backend"]
    assert "valid backends: echo" in str(info.value)


async def test_too_many_completions_is_refused(backend: ScriptedBackend) -> None:
    service = GradingService({"echo": backend}, MemoryCache(10), RewardSpec(), max_completions=3)
    with pytest.raises(BadRequest, match="limit is 3"):
        await service.grade(request(["a"] * 4))
    assert backend.graded == []


class BrokenBackend(ScriptedBackend):
    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        raise RuntimeError("bug")


async def test_a_broken_backend_yields_errors_not_wrong_answers() -> None:
    service = GradingService({"echo": BrokenBackend()}, MemoryCache(10), RewardSpec())
    results = (await service.grade(request(["a", "b"]))).groups[0].results
    assert [(r.status, r.reward) for r in results] == [("error", None), ("error", None)]
    assert results[0].detail == "backend failed: RuntimeError"


async def test_each_group_says_which_backend_version_graded_it(service: GradingService) -> None:
    response = await service.grade(request(["a"]))
    assert response.groups[0].backend_version == "1"
    assert response.backends == {"echo": "1"}


async def test_verdicts_of_old_rules_are_not_served_once_the_version_changes(
    service: GradingService, backend: ScriptedBackend
) -> None:
    await service.grade(request(["a", "b"]))
    backend.version = "2"  # the rules changed (a restart on new code, over the same Redis)
    response = await service.grade(request(["a", "b"]))
    assert backend.graded == ["a", "b", "a", "b"]
    assert response.groups[0].backend_version == "2"
    backend.version = "1"  # a server still on the old rules keeps its verdicts
    await service.grade(request(["a", "b"]))
    assert backend.graded == ["a", "b", "a", "b"]


class WorkerOnOtherRules(ScriptedBackend):
    """Its verdicts come from elsewhere (a queue worker), with the rules version they were graded under."""

    def __init__(self, graded_under: str | None) -> None:
        super().__init__()
        self.graded_under = graded_under

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        verdicts = await super().grade(reference, completions)
        return [replace(verdict, backend_version=self.graded_under) for verdict in verdicts]


async def test_a_verdict_of_other_rules_is_cached_under_its_own_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = MemoryCache(100)
    backend = WorkerOnOtherRules(graded_under="old")
    service = GradingService({"echo": backend}, cache, RewardSpec())
    with caplog.at_level(logging.WARNING, logger="reward_server.grading"):
        first = await service.grade(request(["a"]))
        await service.grade(request(["a"]))
    assert first.groups[0].results[0].status == "correct"  # served to the caller...
    assert backend.graded == ["a", "a"]  # ...but never from this server's cache
    assert sum("graded under rules old" in record.getMessage() for record in caplog.records) == 1
    # A server on the worker's rules finds it.
    old_rules = ScriptedBackend()
    old_rules.version = "old"
    await GradingService({"echo": old_rules}, cache, RewardSpec()).grade(request(["a"]))
    assert old_rules.graded == []


async def test_a_verdict_graded_under_this_servers_rules_is_cached_as_usual() -> None:
    backend = WorkerOnOtherRules(graded_under="1")  # a worker on the server's own rules
    service = GradingService({"echo": backend}, MemoryCache(100), RewardSpec())
    await service.grade(request(["a"]))
    await service.grade(request(["a"]))
    assert backend.graded == ["a"]
