"""The `math` backend: MATH-style final answers, graded with sympy in killable worker processes.

Flow for one group: extract the final answer of every completion (worker jobs of up to 64 completions
and 1 MiB together, a longer completion alone, each under the deadline times its completions), judge each
distinct answer against the gold once (one job per answer, each under the hard deadline), then sort the
answers into classes for majority voting.

A completion is only ever graded by what it does itself: when an extraction job of several completions
fails (one of them ran past the deadline, or made the worker raise), each is extracted again alone, and the
one to blame gets `REWARD_MATH_TIMEOUT_STATUS` (a deadline) or `no_answer` (its extraction raised, e.g.
MemoryError), with a detail; its neighbours are graded normally. An answer whose judging raises is
`incorrect` (not shown equivalent). Only a dead worker is an `error`.

Class rule (equivalence is not transitive, so the rule must be fixed): every correct answer joins one
class, the class of the first correct answer; an incorrect answer joins the first earlier incorrect class
(in order of first appearance) whose representative it is equivalent to, the representative playing the
gold; otherwise it opens a new class. Completions without an answer, and those whose grading failed,
have no class. So a group has at most one correct class, and majority voting can trust it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sympy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reward_server.backends.base import BaseBackend, Memo, Verdict
from reward_server.backends.registry import register_backend
from reward_server.backends.rules_version import rules_version
from reward_server.concurrency import gather_bounded
from reward_server.deadline_pool import DeadlinePool, JobFailed, JobTimeout, WorkerCrashed
from reward_server.errors import BadRequest
from reward_server.math_grading import extract_answer, gold_answer, judge
from reward_server.schemas import Status
from reward_server.settings import RewardSettings

log = logging.getLogger(__name__)
MAX_GOLD_CHARS = 10_000
# Completions extracted in one worker job: at most this many, and this many characters together.
EXTRACT_BATCH_SIZE = 64
EXTRACT_BATCH_CHARS = 1024 * 1024
JOBS_IN_FLIGHT_PER_WORKER = 4
# What decides a math verdict, hashed into the backend's version: the rules (every module of math_grading)
# and this module (which failures become which status). A problem file needs no place here: a `problem_id`
# is resolved to its gold answer before the reference is hashed into the cache key.
HUMAN_VERSION = "0.1.0"
RULES_MODULES = ("reward_server.math_grading", __name__)


class MathReference(BaseModel):
    """Reference of a math group: the gold answer (bare LaTeX, as MATH's `answer`) or a problem id."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(
        None, min_length=1, max_length=MAX_GOLD_CHARS, description="Gold answer, e.g. `\\frac{1}{2}`."
    )
    problem_id: str | None = Field(
        None, description="Id of a problem loaded from REWARD_MATH_PROBLEMS_PATH (e.g. `unique_id`)."
    )

    @field_validator("answer")
    @classmethod
    def _gold_of_a_worked_solution(cls, answer: str | None) -> str | None:
        return None if answer is None else gold_answer(answer)  # GSM8K's "... #### 42" is 42

    @model_validator(mode="after")
    def _exactly_one(self) -> MathReference:
        if (self.answer is None) == (self.problem_id is None):
            raise ValueError("give exactly one of `answer` and `problem_id`")
        return self


# Jobs run in the worker processes; they are module-level so that they pickle by name.


def extract_answers(completions: Sequence[str]) -> list[str | None]:
    return [extract_answer(text) for text in completions]


def judge_answer(gold: str, answer: str) -> tuple[bool, str]:
    judgement = judge(gold, answer)
    return judgement.equivalent, judgement.display


def first_equivalent(representatives: Sequence[str], answer: str) -> int | None:
    for index, representative in enumerate(representatives):
        if judge(representative, answer).equivalent:
            return index
    return None


def load_problems(path: Path) -> dict[str, str]:
    """Read `{id: gold}` from a JSONL file with an `answer` field and an id in `unique_id` or `id`."""
    problems: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            problem_id = row.get("unique_id", row.get("id"))
            if problem_id is None or "answer" not in row:
                raise ValueError(f"{path}:{number}: a problem needs `answer` and `unique_id` or `id`")
            problems[str(problem_id)] = str(row["answer"])
    return problems


@register_backend("math")
class MathBackend(BaseBackend[MathReference]):
    name = "math"
    description = "MATH final answers: boxed/final-answer extraction, exact, numeric then sympy equivalence."
    reference_model = MathReference

    def __init__(self, settings: RewardSettings) -> None:
        super().__init__(settings)
        self.timeout_s = settings.math_timeout_s
        self.timeout_status = Status(settings.math_timeout_status)
        # A timeout is the answer's doing, so its verdict is cached: the deadline and the status it gets
        # are conventions of the verdict, like the rules. So is sympy's release (pyproject allows a range),
        # whose parsing and simplification decide equivalences.
        self.version = rules_version(
            HUMAN_VERSION,
            RULES_MODULES,
            {
                "timeout_s": self.timeout_s,
                "timeout_status": self.timeout_status.value,
                "sympy": sympy.__version__,
                # An extraction that runs out of memory is `no_answer` (cached), so the limit decides it too.
                "worker_memory_mb": settings.math_worker_memory_mb,
            },
        )
        self.pool = DeadlinePool(
            settings.math_workers, preload=[__name__], memory_limit_mb=settings.math_worker_memory_mb
        )
        self.problems = load_problems(settings.math_problems_path) if settings.math_problems_path else {}

    async def start(self) -> None:
        await self.pool.start()
        await super().start()

    async def close(self) -> None:
        await super().close()
        await self.pool.close()

    @property
    def ready(self) -> bool:
        return super().ready and self.pool.alive

    def parse_reference(self, raw: dict[str, Any]) -> MathReference:
        """The gold answer: given, or looked up by `problem_id`."""
        reference = super().parse_reference(raw)
        if reference.problem_id is not None:
            gold = self.problems.get(reference.problem_id)
            if gold is None:
                raise BadRequest(
                    f"unknown problem_id {reference.problem_id!r} ({len(self.problems)} problems loaded)",
                    [{"loc": ["problem_id"], "msg": "unknown problem_id"}],
                )
            reference = MathReference(answer=gold)
        return reference

    async def grade(self, reference: MathReference, completions: Sequence[str]) -> list[Verdict]:
        gold = reference.answer
        if gold is None:  # parse_reference resolves every problem_id to its answer
            raise ValueError("a math reference to grade holds its answer")
        # At most a few jobs per worker in flight (gather_bounded): a group may hold 100,000 answers.
        limit = JOBS_IN_FLIGHT_PER_WORKER * self.pool.size
        batches = await gather_bounded(self._extract, _batches(completions), limit)
        answers = [answer for batch in batches for answer in batch]
        distinct = list(dict.fromkeys(a for a in answers if isinstance(a, str)))
        verdicts = await gather_bounded(lambda answer: self._judge(gold, answer), distinct, limit)
        judged = dict(zip(distinct, verdicts, strict=True))
        return [
            answer
            if isinstance(answer, Verdict)
            else Verdict(Status.NO_ANSWER, detail="no final answer found")
            if answer is None
            else judged[answer]
            for answer in answers
        ]

    async def _extract(self, completions: list[str]) -> list[str | None | Verdict]:
        """The answer of each completion (None: none found), or the verdict of one whose extraction failed."""
        try:
            # Extraction is linear in the text; the deadline scales with the number of completions.
            found = await self.pool.run(
                extract_answers, completions, timeout_s=self.timeout_s * len(completions)
            )
        except (JobTimeout, WorkerCrashed) as exc:
            if len(completions) == 1:
                return [self._extraction_failed(exc)]
            # One of them is to blame (or the worker died): each alone, so that only that one is affected.
            alone = await asyncio.gather(*(self._extract([text]) for text in completions))
            return [answer for answers in alone for answer in answers]
        return list(found)

    def _extraction_failed(self, exc: Exception) -> Verdict:
        if isinstance(exc, JobTimeout):
            return Verdict(self.timeout_status, detail=f"answer extraction deadline: {exc}")
        if isinstance(exc, JobFailed):  # it made the extraction raise (e.g. MemoryError): nothing extractable
            return Verdict(Status.NO_ANSWER, detail=f"answer extraction failed: {exc}"[:300])
        return Verdict(Status.ERROR, detail=f"answer extraction failed: {exc}")

    async def _judge(self, gold: str, answer: str) -> Verdict:
        try:
            equivalent, display = await self.pool.run(judge_answer, gold, answer, timeout_s=self.timeout_s)
        except JobTimeout as exc:
            return Verdict(self.timeout_status, _short(answer), answer, f"grading deadline: {exc}")
        except JobFailed as exc:
            # The answer made the judging raise (sympy gave up on it, or it hit the worker's memory limit) and
            # the worker lives on: not shown equivalent, as for any answer we cannot parse. As an `error` it
            # would trade its penalty for a dropped sample. Logged: it may also be a bug of ours.
            log.warning("judging %r against %r raised: %s", answer[:200], gold[:200], exc)
            return Verdict(Status.INCORRECT, _short(answer), answer, f"grading raised: {exc}"[:300])
        except WorkerCrashed as exc:  # the worker died: ours to retry, never the answer's
            return Verdict(Status.ERROR, _short(answer), answer, f"grading failed: {exc}")
        return Verdict(Status.CORRECT if equivalent else Status.INCORRECT, display, answer)

    async def answer_classes(
        self, reference: MathReference, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        classes: list[int | None] = []
        correct_class: int | None = None
        class_count = 0
        incorrect_reps: list[str] = []  # answer keys of incorrect classes, in order of appearance
        incorrect_class_of_rep: list[int] = []
        by_display: dict[str, int] = {}  # equal displays are equivalent by construction: no job needed
        for verdict in verdicts:
            key = verdict.answer_key
            if key is None or verdict.status not in (Status.CORRECT, Status.INCORRECT):
                classes.append(None)
                continue
            if verdict.status is Status.CORRECT:
                if correct_class is None:
                    correct_class, class_count = class_count, class_count + 1
                classes.append(correct_class)
                continue
            display = verdict.answer or key
            if display not in by_display:
                match = await self._first_equivalent(incorrect_reps, key, memo) if incorrect_reps else None
                if match is None:
                    incorrect_reps.append(key)
                    incorrect_class_of_rep.append(class_count)
                    by_display[display] = class_count
                    class_count += 1
                else:
                    by_display[display] = incorrect_class_of_rep[match]
            classes.append(by_display[display])
        return classes

    async def _first_equivalent(self, representatives: list[str], answer: str, memo: Memo) -> int | None:
        async def compute() -> int | None:
            return await self.pool.run(
                first_equivalent, list(representatives), answer, timeout_s=self.timeout_s
            )

        try:
            result: int | None = await memo(["first_equivalent", *representatives, answer], compute)
        except (JobTimeout, WorkerCrashed):
            return None  # not shown equivalent: the answer opens a class of its own (and nothing is cached)
        return result


def _batches(completions: Sequence[str]) -> list[list[str]]:
    """Consecutive completions, EXTRACT_BATCH_SIZE and EXTRACT_BATCH_CHARS per batch at most (or one)."""
    batches: list[list[str]] = []
    size = 0
    for text in completions:
        if not batches or len(batches[-1]) == EXTRACT_BATCH_SIZE or size + len(text) > EXTRACT_BATCH_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(text)
        size += len(text)
    return batches


def _short(answer: str, limit: int = 200) -> str:
    return answer if len(answer) <= limit else answer[:limit] + "…"
