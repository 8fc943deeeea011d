"""The grading service: validate groups, consult the cache, call backends, assemble the response.

Both the HTTP route and `reward-server grade-file` go through `GradingService.grade`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticSerializationError

from reward_server.backends.base import AnyBackend
from reward_server.backends.registry import get_backend
from reward_server.cache import ResultCache, cache_key
from reward_server.concurrency import gather_bounded
from reward_server.errors import BadRequest, Overloaded
from reward_server.metrics import Metrics
from reward_server.request_scope import request_scope
from reward_server.schemas import (
    AnswerClass,
    CompletionResult,
    GradeGroup,
    GradeRequest,
    GradeResponse,
    GroupResult,
    RewardSpec,
    Status,
)
from reward_server.verdict import Verdict

log = logging.getLogger(__name__)
# Groups of one request graded at once: enough to keep every worker busy, few enough that their tasks never
# hold up the event loop (see `concurrency.gather_bounded`).
GROUPS_IN_FLIGHT = 64
# An error lists at most this many fields (a million bad tests would otherwise make a million).
MAX_FIELDS = 20


def digest(text: str) -> str:
    """What a completion (or answer) contributes to a cache key. Its SHA-256, not the text: `cache_key`
    JSON-encodes its parts, one C call that holds the GIL 0.6 s for 40 MB of emoji."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_request_size(request: GradeRequest, max_groups: int, max_completions: int) -> None:
    """Raise BadRequest (naming `groups`) when `request` asks for more than one request may."""
    if len(request.groups) > max_groups:
        raise BadRequest(
            f"invalid request: body.groups: {len(request.groups)} groups in one request; the limit is "
            f"{max_groups} (REWARD_MAX_GROUPS_PER_REQUEST)",
            [{"loc": ["body", "groups"], "msg": "too many groups"}],
        )
    total = sum(len(group.completions) for group in request.groups)
    if total > max_completions:
        raise BadRequest(
            f"invalid request: body.groups: {total} completions in one request; the limit is "
            f"{max_completions} (REWARD_MAX_COMPLETIONS_PER_REQUEST)",
            [{"loc": ["body", "groups"], "msg": "too many completions"}],
        )


def error_message(error: ErrorDetails) -> str:
    """pydantic's message for one error, in plain words where pydantic's are obscure: a lone UTF-16
    surrogate (the JSON escape "\\ud800") in a string field is "unable to parse raw data as a unicode
    string" there."""
    if error["type"] == "string_unicode":
        return "holds a lone UTF-16 surrogate (such as \\ud800), which has no UTF-8 form"
    return error["msg"]


def reference_error(index: int, backend: str, exc: ValidationError) -> BadRequest:
    """The BadRequest of group `index`'s invalid reference, each field located from the body."""
    fields = [
        {"loc": ["body", "groups", index, "reference", *err["loc"]], "msg": error_message(err)}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:MAX_FIELDS]
    ]
    where = ".".join(str(part) for part in fields[0]["loc"])
    return BadRequest(f"invalid reference for backend {backend!r} at {where}: {fields[0]['msg']}", fields)


@dataclass(frozen=True)
class _Prepared:
    """A group with its backend, its validated reference and the reference's hash (for cache keys)."""

    group: GradeGroup
    backend: AnyBackend
    reference: BaseModel
    ref_hash: str


class GradingService:
    def __init__(
        self,
        backends: Mapping[str, AnyBackend],
        cache: ResultCache,
        default_reward: RewardSpec,
        metrics: Metrics | None = None,
        max_completions: int = 100_000,
        max_groups: int = 10_000,
    ) -> None:
        self.backends = backends
        self.cache = cache
        self.default_reward = default_reward
        self.metrics = metrics or Metrics()
        self.metrics.watch_backends(backends)
        self.max_completions = max_completions
        self.max_groups = max_groups
        self._foreign_versions: set[str] = set()  # rules versions of queue workers that differ from ours

    async def grade(self, request: GradeRequest) -> GradeResponse:
        """Grade every group of `request`; raise BadRequest (naming the field) before any grading."""
        check_request_size(request, self.max_groups, self.max_completions)
        # References are validated (a code reference may hold 10,000 tests) in a thread: the event loop
        # never runs work that grows with the request.
        prepared = await asyncio.to_thread(self._prepare_all, request.groups)
        reward = request.reward or self.default_reward
        completions = Counter[str]()
        for item in prepared:
            completions[item.backend.name] += len(item.group.completions)
        # The groups' tasks inherit the scope: a shared executor (the job queue) sees them as one request.
        async with request_scope(completions):
            results = await gather_bounded(
                lambda item: self._grade_group(item, reward), prepared, GROUPS_IN_FLIGHT
            )
        used = {item.backend.name: item.backend.version for item in prepared}
        return GradeResponse(request_id=request.request_id, groups=list(results), backends=used)

    def _prepare_all(self, groups: Sequence[GradeGroup]) -> list[_Prepared]:
        return [self._prepare(index, group) for index, group in enumerate(groups)]

    def _prepare(self, index: int, group: GradeGroup) -> _Prepared:
        try:
            backend = get_backend(self.backends, group.backend)
        except BadRequest as exc:
            exc.fields = [{"loc": ["body", "groups", index, "backend"], "msg": str(exc)}]
            raise
        try:
            reference = backend.parse_reference(group.reference)
        except ValidationError as exc:
            raise reference_error(index, backend.name, exc) from None
        except BadRequest as exc:
            exc.fields = [
                {**field, "loc": ["body", "groups", index, "reference", *field.get("loc", [])]}
                for field in exc.fields
            ]
            raise
        # The reference is hashed once per group: a CodeContests suite can be megabytes.
        try:
            dumped = reference.model_dump_json()
        except PydanticSerializationError as exc:  # a plug-in reference holding what JSON cannot
            where = f"body.groups.{index}.reference"
            message = f"cannot be written as JSON ({exc})"
            raise BadRequest(
                f"invalid reference for backend {backend.name!r} at {where}: {message}",
                [{"loc": ["body", "groups", index, "reference"], "msg": message}],
            ) from None
        ref_hash = hashlib.sha256(dumped.encode()).hexdigest()
        return _Prepared(group, backend, reference, ref_hash)

    async def _grade_group(self, prepared: _Prepared, reward: RewardSpec) -> GroupResult:
        backend, reference = prepared.backend, prepared.reference
        verdicts = await self._verdicts(prepared)
        memo = self._memo(backend, reference)
        try:
            classes = await backend.answer_classes(reference, verdicts, memo)
        except Exception:
            log.exception("backend %r failed to sort answers into classes", backend.name)
            classes = [None] * len(verdicts)
        # Linear in the completions (up to 100,000 results): in a thread.
        result, statuses = await asyncio.to_thread(
            _group_result, prepared.group.group_id, backend.version, verdicts, classes, reward
        )
        for status, count in statuses.items():
            self.metrics.completions.labels(backend.name, status).inc(count)
        return result

    async def _verdicts(self, prepared: _Prepared) -> list[Verdict]:
        """Cached verdicts where present; the backend grades each distinct missing completion once.

        Everything linear in the completions runs in a thread (keys: one completion may be tens of
        megabytes; lists of up to 100,000 verdicts); the event loop only awaits the cache and the backend.
        """
        backend, reference, completions = prepared.backend, prepared.reference, prepared.group.completions

        def key_of(version: str, text: str) -> str:
            return cache_key(backend.name, version, prepared.ref_hash, digest(text))

        keys = await asyncio.to_thread(lambda: [key_of(backend.version, text) for text in completions])
        cached = await self.cache.get_many(keys)
        missing = await asyncio.to_thread(
            lambda: list(
                dict.fromkeys(text for text, hit in zip(completions, cached, strict=True) if hit is None)
            )
        )
        misses = cached.count(None)
        self.metrics.cache_lookups.labels("hit").inc(len(completions) - misses)
        self.metrics.cache_lookups.labels("miss").inc(misses)
        fresh = dict(zip(missing, await self._grade_missing(backend, reference, missing), strict=True))
        verdicts, to_store, foreign = await asyncio.to_thread(
            _merge, keys, completions, cached, fresh, backend.version, key_of
        )
        await self.cache.set_many(to_store)
        self._note_foreign_versions(backend, foreign)
        return verdicts

    def _note_foreign_versions(self, backend: AnyBackend, versions: Iterable[str]) -> None:
        """Say once per version when verdicts come graded under other rules than this server's backend."""
        for version in versions:
            if version in self._foreign_versions:
                continue
            self._foreign_versions.add(version)
            log.warning(
                "backend %r: verdicts graded under rules %s (a queue worker's), this server's are %s: "
                "they are cached under theirs and never served here from the cache (workers and server "
                "on different code or settings?)",
                backend.name,
                version,
                backend.version,
            )

    async def _grade_missing(
        self, backend: AnyBackend, reference: BaseModel, completions: list[str]
    ) -> list[Verdict]:
        """The backend's verdicts; if the backend itself breaks, `error` verdicts (never a wrong answer)."""
        if not completions:
            return []
        started = time.perf_counter()
        try:
            verdicts = await backend.grade(reference, completions)
            self.metrics.backend_seconds.labels(backend.name).observe(time.perf_counter() - started)
            return verdicts
        except Overloaded:
            raise  # nothing was graded: the client is told to come back (429/503 with Retry-After)
        except Exception as exc:
            log.exception("backend %r failed", backend.name)
            return [Verdict(Status.ERROR, detail=f"backend failed: {type(exc).__name__}")] * len(completions)

    def _memo(
        self, backend: AnyBackend, reference: BaseModel
    ) -> Callable[[Sequence[str], Callable[[], Awaitable[Any]]], Awaitable[Any]]:
        async def memo(parts: Sequence[str], compute: Callable[[], Awaitable[Any]]) -> Any:
            key = await asyncio.to_thread(
                lambda: cache_key("memo", backend.name, backend.version, *map(digest, parts))
            )
            (hit,) = await self.cache.get_many([key])
            if hit is not None:
                return hit["value"]
            value = await compute()
            await self.cache.set_many({key: {"value": value}})
            return value

        return memo


def _merge(
    keys: Sequence[str],
    completions: Sequence[str],
    cached: Sequence[Any | None],
    fresh: dict[str, Verdict],
    version: str,
    key_of: Callable[[str, str], str],
) -> tuple[list[Verdict], dict[str, Any], set[str]]:
    """Every completion's verdict (cached or fresh), the fresh ones to cache (never an `error` or an
    uncertain one), and the other rules versions that fresh verdicts were graded under.

    `keys` are the completions' keys under the backend's `version`; a verdict graded under other rules (a
    queue worker's, mid-upgrade) is stored under its own version instead (`key_of(version, completion)`), so
    that a server on other rules can never read it as its own."""
    verdicts = [
        Verdict.from_json(hit) if hit is not None else fresh[text]
        for text, hit in zip(completions, cached, strict=True)
    ]
    foreign = {v.backend_version for v in fresh.values() if v.backend_version not in (None, version)}
    to_store = {}
    for key, text in zip(keys, completions, strict=True):
        verdict = fresh.get(text)
        if verdict is None or not verdict.cacheable:
            continue
        graded_by = verdict.backend_version or version
        to_store[key if graded_by == version else key_of(graded_by, text)] = verdict.to_json()
    return verdicts, to_store, foreign


def _group_result(
    group_id: str,
    backend_version: str,
    verdicts: Sequence[Verdict],
    classes: Sequence[int | None],
    reward: RewardSpec,
) -> tuple[GroupResult, Counter[str]]:
    result = GroupResult(
        group_id=group_id,
        backend_version=backend_version,
        results=[
            CompletionResult(
                status=verdict.status,
                reward=reward.for_status(verdict.status),
                answer=verdict.answer,
                answer_class=answer_class,
                detail=verdict.detail,
                tests=verdict.tests,
            )
            for verdict, answer_class in zip(verdicts, classes, strict=True)
        ],
        answer_classes=_summarize_classes(verdicts, classes),
    )
    return result, Counter(verdict.status.value for verdict in verdicts)


def _summarize_classes(verdicts: Sequence[Verdict], classes: Sequence[int | None]) -> list[AnswerClass]:
    summary: list[AnswerClass] = []
    for verdict, answer_class in zip(verdicts, classes, strict=True):
        if answer_class is None:
            continue
        if answer_class == len(summary):
            summary.append(
                AnswerClass(
                    answer=verdict.answer or verdict.answer_key or "",
                    count=0,
                    correct=verdict.status is Status.CORRECT,
                )
            )
        summary[answer_class].count += 1
    return summary
