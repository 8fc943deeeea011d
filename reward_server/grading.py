"""The grading service: validate groups, consult the cache, call backends, assemble the response.

Both the HTTP route and `reward-server grade-file` go through `GradingService.grade`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from reward_server.backends.base import RewardBackend, Verdict
from reward_server.backends.registry import get_backend
from reward_server.cache import ResultCache, cache_key
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

log = logging.getLogger(__name__)


class GradingService:
    def __init__(
        self,
        backends: Mapping[str, RewardBackend],
        cache: ResultCache,
        default_reward: RewardSpec,
        metrics: Metrics | None = None,
        max_completions: int = 100_000,
    ) -> None:
        self.backends = backends
        self.cache = cache
        self.default_reward = default_reward
        self.metrics = metrics or Metrics()
        self.metrics.watch_backends(backends)
        self.max_completions = max_completions

    async def grade(self, request: GradeRequest) -> GradeResponse:
        """Grade every group of `request`; raise BadRequest (naming the field) before any grading."""
        total = sum(len(group.completions) for group in request.groups)
        if total > self.max_completions:
            raise BadRequest(
                f"{total} completions in one request; the limit is {self.max_completions}",
                [{"loc": ["body", "groups"], "msg": "too many completions"}],
            )
        prepared = [self._prepare(index, group) for index, group in enumerate(request.groups)]
        reward = request.reward or self.default_reward
        completions = Counter[str]()
        for group, backend, _ in prepared:
            completions[backend.name] += len(group.completions)
        # The groups' tasks inherit the scope: a shared executor (the job queue) sees them as one request.
        async with request_scope(completions):
            results = await asyncio.gather(
                *(
                    self._grade_group(group, backend, reference, reward)
                    for group, backend, reference in prepared
                )
            )
        used = {backend.name: backend.version for _, backend, _ in prepared}
        return GradeResponse(request_id=request.request_id, groups=list(results), backends=used)

    def _prepare(self, index: int, group: GradeGroup) -> tuple[GradeGroup, RewardBackend, BaseModel]:
        try:
            backend = get_backend(self.backends, group.backend)
        except BadRequest as exc:
            exc.fields = [{"loc": ["body", "groups", index, "backend"], "msg": str(exc)}]
            raise
        try:
            reference = backend.parse_reference(group.reference)
        except ValidationError as exc:
            fields = [
                {"loc": ["body", "groups", index, "reference", *err["loc"]], "msg": err["msg"]}
                for err in exc.errors(include_url=False)
            ]
            where = ".".join(str(part) for part in fields[0]["loc"]) if fields else "reference"
            raise BadRequest(f"invalid reference for backend {backend.name!r} at {where}", fields) from None
        except BadRequest as exc:
            exc.fields = [
                {**field, "loc": ["body", "groups", index, "reference", *field.get("loc", [])]}
                for field in exc.fields
            ]
            raise
        return group, backend, reference

    async def _grade_group(
        self, group: GradeGroup, backend: RewardBackend, reference: BaseModel, reward: RewardSpec
    ) -> GroupResult:
        verdicts = await self._verdicts(backend, reference, group.completions)
        memo = self._memo(backend, reference)
        try:
            classes = await backend.answer_classes(reference, verdicts, memo)
        except Exception:
            log.exception("backend %r failed to sort answers into classes", backend.name)
            classes = [None] * len(verdicts)
        for verdict in verdicts:
            self.metrics.completions.labels(backend.name, verdict.status.value).inc()
        return GroupResult(
            group_id=group.group_id,
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

    async def _verdicts(
        self, backend: RewardBackend, reference: BaseModel, completions: Sequence[str]
    ) -> list[Verdict]:
        """Cached verdicts where present; the backend grades each distinct missing completion once."""
        # The reference is hashed once per group: a CodeContests suite can be megabytes.
        ref_hash = hashlib.sha256(reference.model_dump_json().encode()).hexdigest()
        keys = [cache_key(backend.name, backend.version, ref_hash, text) for text in completions]
        cached = await self.cache.get_many(keys)
        missing = list(
            dict.fromkeys(text for text, hit in zip(completions, cached, strict=True) if hit is None)
        )
        self.metrics.cache_lookups.labels("hit").inc(len(completions) - sum(hit is None for hit in cached))
        self.metrics.cache_lookups.labels("miss").inc(sum(hit is None for hit in cached))
        fresh = dict(zip(missing, await self._grade_missing(backend, reference, missing), strict=True))
        await self.cache.set_many(
            {
                key: verdict.to_json()
                for key, text in zip(keys, completions, strict=True)
                if (verdict := fresh.get(text)) is not None and verdict.cacheable
            }
        )
        return [
            Verdict.from_json(hit) if hit is not None else fresh[text]
            for text, hit in zip(completions, cached, strict=True)
        ]

    async def _grade_missing(
        self, backend: RewardBackend, reference: BaseModel, completions: list[str]
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
        self, backend: RewardBackend, reference: BaseModel
    ) -> Callable[[Sequence[str], Callable[[], Awaitable[Any]]], Awaitable[Any]]:
        async def memo(parts: Sequence[str], compute: Callable[[], Awaitable[Any]]) -> Any:
            key = cache_key("memo", backend.name, backend.version, *parts)
            (hit,) = await self.cache.get_many([key])
            if hit is not None:
                return hit["value"]
            value = await compute()
            await self.cache.set_many({key: {"value": value}})
            return value

        return memo


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
