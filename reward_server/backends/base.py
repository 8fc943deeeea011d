"""What a grading backend is.

A backend grades the completions of one group against that group's reference and says which answers are
equivalent (the classes majority voting needs). It is created once per server from the settings, started
in the app's lifespan and closed on shutdown. Third-party packages add backends through the entry-point
group `reward_server.backends`, whose value is a factory `(RewardSettings) -> RewardBackend`.

Versions: verdicts are cached for a week under a key that holds the backend's `version`, so a version must
change whenever the backend's verdicts may (a rule, a convention, a setting that changes them). The built-ins
derive theirs from the source of their rules with `backends.rules_version.rules_version`; a plug-in keeps
its own `version` attribute, and may use that helper too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from reward_server.schemas import Status

# Memoizes a backend's pairwise work (e.g. "are these two answers equivalent?") in the result cache, so a
# retried request grades nothing again. Signature: (key parts, compute) -> value.
Memo = Callable[[Sequence[str], Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass(frozen=True)
class Verdict:
    """A backend's verdict on one completion; JSON-serializable so that it can be cached.

    `answer` is the canonical form shown to users; `answer_key` is what the backend compares to decide
    classes (for math, the raw extracted LaTeX). `certain` is False when something outside the completion
    may have decided the verdict (for code: a timeout or kill under others' load). `error` verdicts and
    uncertain ones are never cached. `backend_version` is set when another process graded under its own
    rules (a queue worker, which may run other rules than the server during an upgrade): the verdict is
    cached under that version, never under the server's; None means the grading backend's own version.
    """

    status: Status
    answer: str | None = None
    answer_key: str | None = None
    detail: str | None = None
    tests: dict[str, Any] | None = None
    certain: bool = True
    backend_version: str | None = None

    @property
    def cacheable(self) -> bool:
        return self.certain and self.status is not Status.ERROR

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["backend_version"] is None:
            del data["backend_version"]  # the usual case: not stored in each of millions of cache entries
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        """From `to_json`'s output; fields this version does not know (a newer server's cache entry, a newer
        worker's reply) are ignored, missing ones take their defaults."""
        known = {name: value for name, value in data.items() if name in cls.__dataclass_fields__}
        return cls(**{**known, "status": Status(data["status"])})


@runtime_checkable
class RewardBackend(Protocol):
    name: str
    version: str  # changes whenever verdicts may (see the module docstring); part of every cache key
    description: str

    @property
    def reference_model(self) -> type[BaseModel]:
        """The pydantic model of this backend's `reference` (its JSON schema is published)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    def parse_reference(self, raw: dict[str, Any]) -> BaseModel:
        """Validate (and resolve, e.g. a problem id) a group's reference; raise ValidationError/BadRequest."""
        ...

    async def grade(self, reference: BaseModel, completions: Sequence[str]) -> list[Verdict]:
        """Grade `completions` (already deduplicated by the caller's cache) against `reference`."""
        ...

    async def answer_classes(
        self, reference: BaseModel, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        """Class index per verdict (first appearance order); None for verdicts without an answer."""
        ...
