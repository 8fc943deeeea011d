"""An example grading backend, `exact_match`: the final answer must equal the reference's.

The answer of a completion is the text after its last `Answer:` (to the end of that line), or else its last
non-empty line. Answers and the gold are compared after normalizing: surrounding whitespace, runs of
whitespace and a trailing period do not count, and neither does case unless the reference says
`"case_sensitive": true`. Equal normalized answers are one answer class, so majority voting works.

Install it next to the server and it is served as the backend `exact_match`:

    pip install examples/backends/exact_match
    reward-server serve
    curl -s localhost:8000/v1/grade -H 'content-type: application/json' -d '{"groups": [{"group_id": "g",
      "backend": "exact_match", "reference": {"answer": "Paris"}, "completions": ["Answer: paris"]}]}'

It is built on `reward_server.backends.base.BaseBackend`, which gives it its lifecycle, reference parsing
(`reference_model`), and a version derived from this file (edit a rule here and cached verdicts of the old
rules are no longer served).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from reward_server.backends.base import BaseBackend, Memo, Verdict, classes_by_answer_key
from reward_server.schemas import Status

MAX_ANSWER_CHARS = 10_000
_ANSWER_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class ExactMatchReference(BaseModel):
    """Reference of an `exact_match` group."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(..., min_length=1, max_length=MAX_ANSWER_CHARS, description="The gold answer.")
    case_sensitive: bool = Field(False, description="Compare letters' case too.")


def extract_answer(completion: str) -> str | None:
    """The text after the last `Answer:` to the end of its line, else the last non-empty line; None if none.

    Example:
        extract_answer("Paris is the capital.\\nAnswer: Paris.") -> "Paris."
    """
    markers = list(_ANSWER_MARKER.finditer(completion))
    if markers:
        answer = completion[markers[-1].end() :].split("\n", 1)[0]
    else:
        lines = [line for line in completion.splitlines() if line.strip()]
        answer = lines[-1] if lines else ""
    return answer.strip() or None


def normalize(answer: str, case_sensitive: bool) -> str:
    """Whitespace collapsed, a trailing period dropped, and (unless `case_sensitive`) case folded."""
    text = _WHITESPACE.sub(" ", answer).strip().removesuffix(".").rstrip()
    return text if case_sensitive else text.casefold()


def grade_all(reference: ExactMatchReference, completions: Sequence[str]) -> list[Verdict]:
    gold = normalize(reference.answer, reference.case_sensitive)
    verdicts = []
    for completion in completions:
        answer = extract_answer(completion)
        if answer is None:
            verdicts.append(Verdict(Status.NO_ANSWER, detail="no answer found"))
            continue
        key = normalize(answer, reference.case_sensitive)
        status = Status.CORRECT if key == gold else Status.INCORRECT
        verdicts.append(Verdict(status, answer=answer[:200], answer_key=key))
    return verdicts


class ExactMatchBackend(BaseBackend[ExactMatchReference]):
    name = "exact_match"
    description = "Final answer (after `Answer:`, else the last line) equal to the reference, normalized."
    reference_model = ExactMatchReference

    async def grade(self, reference: ExactMatchReference, completions: Sequence[str]) -> list[Verdict]:
        # Linear in the completions, which may be many and long: in a thread, never on the event loop.
        return await asyncio.to_thread(grade_all, reference, list(completions))

    async def answer_classes(
        self, reference: ExactMatchReference, verdicts: Sequence[Verdict], memo: Memo
    ) -> list[int | None]:
        return classes_by_answer_key(verdicts)
