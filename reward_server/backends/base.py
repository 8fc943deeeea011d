"""What a grading backend is.

A backend grades the completions of one group against that group's reference and says which answers are
equivalent (the classes majority voting needs). It is created once per server from the settings, started
in the app's lifespan and closed on shutdown. Third-party packages add backends through the entry-point
group `reward_server.backends`, whose value is a factory `(RewardSettings) -> RewardBackend`.

Versions: verdicts are cached for a week under a key that holds the backend's `version`, so a version must
change whenever the backend's verdicts may (a rule, a convention, a setting that changes them). The built-ins
derive theirs from the source of their rules with `backends.rules_version.rules_version`; so does
`BaseBackend` by default (from the module that defines the backend class).

Writing one: subclass `BaseBackend[YourReference]`, set `name`, `description` and `reference_model`, and
write `grade` (see `examples/backends/exact_match`). `grade` runs on the server's event loop: it must never
block it. CPU-bound work goes to worker processes (`reward_server.deadline_pool.DeadlinePool`, which can
kill a job that runs past its deadline) or, when it is short and bounded, `asyncio.to_thread`.

`Verdict` is defined in `reward_server.verdict` (the executors and the job queue speak it too) and
re-exported here, with everything a backend needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

from pydantic import BaseModel

from reward_server.backends.rules_version import rules_version
from reward_server.schemas import Status
from reward_server.verdict import Verdict

if TYPE_CHECKING:
    from reward_server.settings import RewardSettings

__all__ = [
    "AnyBackend",
    "BaseBackend",
    "Memo",
    "ReferenceT",
    "RewardBackend",
    "Verdict",
    "classes_by_answer_key",
]

# Memoizes a backend's pairwise work (e.g. "are these two answers equivalent?") in the result cache, so a
# retried request grades nothing again. Signature: (key parts, compute) -> value.
Memo = Callable[[Sequence[str], Callable[[], Awaitable[Any]]], Awaitable[Any]]

# The reference a backend grades against: what its `parse_reference` returns and its `grade` receives.
ReferenceT = TypeVar("ReferenceT", bound=BaseModel)


class RewardBackend(Protocol[ReferenceT]):
    """What the server needs of a backend; `registry.check_backend` checks each one at start-up."""

    name: str
    description: str

    @property
    def version(self) -> str:
        """Changes whenever verdicts may (see the module docstring); part of every cache key."""
        ...

    @property
    def reference_model(self) -> type[BaseModel]:
        """The pydantic model of this backend's `reference` (its JSON schema is published)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    @property
    def ready(self) -> bool: ...

    def parse_reference(self, raw: dict[str, Any]) -> ReferenceT:
        """Validate (and resolve, e.g. a problem id) a group's reference; raise ValidationError/BadRequest."""
        ...

    async def grade(self, reference: ReferenceT, completions: Sequence[str]) -> list[Verdict]:
        """Grade `completions` (already deduplicated by the caller's cache) against `reference`."""
        ...

    async def answer_classes(
        self, reference: ReferenceT, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        """Class index per verdict (first appearance order); None for verdicts without an answer."""
        ...


# A backend of any reference type: what the registry and the grading service hold.
AnyBackend: TypeAlias = RewardBackend[Any]


class BaseBackend(ABC, Generic[ReferenceT]):
    """The defaults most backends share; a subclass sets `name`, `description`, `reference_model` and writes
    `grade`.

    Defaults:
        - `__init__(settings)`: keeps the settings as `self.settings`, so the class itself is the factory an
          entry point names.
        - `parse_reference`: `reference_model.model_validate(raw)`, with `reference_context` as the
          validation context; override it to resolve more (call `super()` first).
        - `start`/`close`/`ready`: ready between `start` and `close`; a backend with resources (a worker
          pool, a sandbox) overrides them and calls `super()`.
        - `answer_classes`: no classes (None for every verdict), so majority voting has nothing to count;
          `classes_by_answer_key` is the rule for backends whose equal `answer_key`s are equal answers.
        - `version`: `rules_version(human_version, [the module that defines the class])`, so editing that
          module changes it. A backend whose verdicts also depend on other modules or on settings sets
          `self.version` itself (in `__init__`, with `rules_version` and those conventions).

    Example:
        class ExactReference(BaseModel):
            answer: str

        class ExactBackend(BaseBackend[ExactReference]):
            name = "exact"
            description = "correct when the completion is the answer"
            reference_model = ExactReference

            async def grade(self, reference, completions):
                return [Verdict(Status.CORRECT if c == reference.answer else Status.INCORRECT, c, c)
                        for c in completions]
    """

    name: str
    description: str
    reference_model: type[ReferenceT]
    # The hand-kept part of the default `version` (bump it for changes its source does not show).
    human_version: ClassVar[str] = "0.1.0"
    # Validation context of a request's reference (e.g. caps it is held to); also passed when a request body
    # is read in a worker process (`api.request_body`).
    reference_context: dict[str, Any] | None = None
    _started: bool = False

    def __init__(self, settings: RewardSettings) -> None:
        self.settings = settings

    @cached_property
    def version(self) -> str:
        return rules_version(self.human_version, [type(self).__module__])

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started

    def parse_reference(self, raw: dict[str, Any]) -> ReferenceT:
        return self.reference_model.model_validate(raw, context=self.reference_context)

    @abstractmethod
    async def grade(self, reference: ReferenceT, completions: Sequence[str]) -> list[Verdict]:
        """One verdict per completion, in order; `error` (never `incorrect`) when grading itself failed."""

    async def answer_classes(
        self, reference: ReferenceT, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        return [None] * len(verdicts)


def classes_by_answer_key(verdicts: Sequence[Verdict]) -> list[int | None]:
    """Classes for backends whose answers are equal exactly when their `answer_key`s are: one class per
    distinct key of a correct or incorrect verdict (first appearance order), None for the others.

    Example:
        classes_by_answer_key([Verdict(Status.CORRECT, "4", "4"), Verdict(Status.NO_ANSWER),
                               Verdict(Status.INCORRECT, "5", "5"), Verdict(Status.CORRECT, "4", "4")])
        -> [0, None, 1, 0]
    """
    order: dict[str, int] = {}
    return [
        order.setdefault(verdict.answer_key, len(order))
        if verdict.answer_key is not None and verdict.status in (Status.CORRECT, Status.INCORRECT)
        else None
        for verdict in verdicts
    ]
