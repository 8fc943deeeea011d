"""Backend registry: built-ins by name, entry points, duplicate names refused, unknown names listed."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from reward_server.backends import registry
from reward_server.errors import BackendNotFound, DuplicateBackend
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
