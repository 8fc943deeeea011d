"""Backend registry: built-ins by name, entry points, duplicate names refused, unknown names listed, and
every backend checked against the protocol at start-up (a broken plug-in is named with what it lacks)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel

from reward_server.backends import registry
from reward_server.backends.base import Verdict
from reward_server.errors import BackendNotFound, DuplicateBackend, InvalidBackend
from reward_server.schemas import Status
from reward_server.settings import RewardSettings


def test_math_is_built_in() -> None:
    assert "math" in registry.load_factories()


def test_duplicate_name_is_refused() -> None:
    registry.load_factories()
    with pytest.raises(DuplicateBackend, match="math"):
        registry.register_backend("math")(lambda settings: None)  # type: ignore[arg-type,return-value]


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(BackendNotFound, match="valid backends: code, math"):
        registry.get_backend({"math": object(), "code": object()}, "lean")  # type: ignore[dict-item]


class EchoBackend:
    name = "echo"

    def __init__(self, settings: RewardSettings) -> None:
        self.settings = settings


def test_entry_point_backends_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint(name="echo", value=f"{__name__}:EchoBackend", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry] if group == entry.group else [])
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    factories = registry.load_factories()
    assert factories["echo"] is EchoBackend
    assert {"echo", "math"} <= set(registry.registered_names())


class Reference(BaseModel):
    answer: str


class CompleteBackend:
    """Every member of the protocol, without BaseBackend."""

    name = "complete"
    version = "1"
    description = "a test double"
    reference_model = Reference
    ready = True

    def __init__(self, settings: RewardSettings) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def parse_reference(self, raw: dict[str, Any]) -> Reference:
        return Reference.model_validate(raw)

    async def grade(self, reference: Reference, completions: Sequence[str]) -> list[Verdict]:
        return [Verdict(Status.CORRECT) for _ in completions]

    async def answer_classes(
        self, reference: Reference, verdicts: Sequence[Verdict], memo: Any
    ) -> list[None]:
        return [None] * len(verdicts)


class NoGradeBackend:
    """A plug-in that forgot most of the protocol: only a name, a description and a sync grade."""

    name = "half"
    description = "a test double"

    def __init__(self, settings: RewardSettings) -> None: ...

    def grade(self, reference: Reference, completions: Sequence[str]) -> list[Verdict]:
        return []


def _install(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """An entry point `name = value` in the backends group, and a registry that forgets it afterwards."""
    entry = EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry] if group == entry.group else [])
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_origins", dict(registry._origins))


def test_the_protocol_members_are_what_the_check_checks() -> None:
    assert registry.protocol_members() == {
        "name": "attribute",
        "description": "attribute",
        "version": "property",
        "reference_model": "property",
        "ready": "property",
        "start": "async",
        "close": "async",
        "parse_reference": "method",
        "grade": "async",
        "answer_classes": "async",
    }


def test_a_complete_plugin_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, "complete", f"{__name__}:CompleteBackend")
    backends = registry.create_backends(RewardSettings(math_workers=1))
    assert isinstance(backends["complete"], CompleteBackend)
    assert {"math", "code"} <= set(backends)


def test_a_plugin_missing_members_names_the_plugin_its_entry_point_and_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(monkeypatch, "half", f"{__name__}:NoGradeBackend")
    with pytest.raises(InvalidBackend) as info:
        registry.create_backends(RewardSettings(math_workers=1))
    message = str(info.value)
    assert f"backend 'half' (entry point `half = {__name__}:NoGradeBackend`" in message
    assert (
        "missing: version, reference_model, start, close, ready, parse_reference, answer_classes;" in message
    )
    assert "grade is not an async method" in message
    assert "BaseBackend" in message  # the way out


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"name": "other"}, "its name is 'other', but it is registered as 'complete'"),
        ({"reference_model": dict}, "reference_model is not a pydantic model class"),
        ({"version": 1}, "version is not a str (int)"),
        ({"parse_reference": "not callable"}, "parse_reference is not a method"),
    ],
)
def test_a_member_of_the_wrong_kind_is_named(override: dict[str, Any], problem: str) -> None:
    backend = CompleteBackend(RewardSettings(math_workers=1))
    for member, value in override.items():
        setattr(backend, member, value)
    with pytest.raises(InvalidBackend, match=re.escape(problem)):
        registry.check_backend("complete", backend, "a test")


def test_the_built_ins_satisfy_the_protocol() -> None:
    backends = registry.create_backends(RewardSettings(math_workers=1))
    for name, backend in backends.items():
        registry.check_backend(name, backend, "built-in")


def test_a_plugin_that_cannot_be_imported_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, "ghost", "no_such_module_here:make")
    with pytest.raises(InvalidBackend, match=r"backend plug-in 'ghost' \(entry point `ghost = no_such_"):
        registry.load_factories()


def test_a_plugin_that_is_not_callable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _install(monkeypatch, "constant", f"{__name__}:NOT_A_FACTORY")
    with pytest.raises(InvalidBackend, match="'constant' .* is not a factory"):
        registry.load_factories()


NOT_A_FACTORY = 42
