"""Completions in the answer formats of public eval harnesses, graded against labeled gold answers.

`data/math/format_cases.jsonl` holds hand-written completions in the formats that lm-evaluation-harness
(minerva_math, gsm8k, hendrycks_math), Qwen2.5-Math, DeepSeek-Math, simple-evals, ToRA and the GSM8K
samples produce or extract (see `data/math/SOURCE.md`). Each case is labeled by the grading conventions:
is the completion's final answer the same answer as `gold`?

`data/math/redteam_cases.jsonl` holds hand-written red-team pairs over every MATH answer type (near misses,
hedges, bounds and conditions around a value, free variables, restated questions), graded the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reward_server.math_grading import extract_answer, grade_completion

DATA = Path(__file__).parents[3] / "data/math"
FIELDS = {"id", "source", "category", "gold", "response", "equivalent", "note"}


def _cases(name: str) -> list[dict[str, object]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


CASES = _cases("format_cases.jsonl")


def test_cases_are_well_formed() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))
    for case in CASES:
        assert set(case) == FIELDS, case["id"]
        assert isinstance(case["equivalent"], bool), case["id"]
        assert all(isinstance(case[field], str) for field in FIELDS - {"equivalent"}), case["id"]
    categories = {str(case["category"]) for case in CASES}
    for category in categories:
        labels = {case["equivalent"] for case in CASES if case["category"] == category}
        assert labels == {True, False}, f"{category} needs positive and negative cases"


@pytest.mark.parametrize("case", CASES, ids=[str(case["id"]) for case in CASES])
def test_format_case(case: dict[str, object]) -> None:
    gold, response = str(case["gold"]), str(case["response"])
    verdict = grade_completion(gold, response)
    assert verdict is case["equivalent"], (
        f"[{case['category']}] extracted {extract_answer(response)!r}, gold {gold!r}: {case['note']}"
    )


REDTEAM_FIELDS = {"id", "category", "gold", "response", "equivalent", "note"}
# Labeled by mathematical truth, but left as they are (false negatives; see data/math/SOURCE.md): a bare
# "6, 31, -1" is an unordered list (§12), not the ordered triple; the ratio "3:4",
# "\\mathbb{R} \\setminus \\{1\\}", a sentence inside the box and "..., which is the final answer" are
# forms the grader does not read yet.
REDTEAM_OPEN = {"rt-0115", "rt-0311", "rt-0369", "rt-0387", "rt-0413"}

REDTEAM = _cases("redteam_cases.jsonl")


def test_redteam_cases_are_well_formed() -> None:
    ids = [case["id"] for case in REDTEAM]
    assert len(ids) == len(set(ids)) and REDTEAM_OPEN <= set(ids)
    for case in REDTEAM:
        assert set(case) == REDTEAM_FIELDS, case["id"]
        assert isinstance(case["equivalent"], bool), case["id"]
    assert {case["equivalent"] for case in REDTEAM} == {True, False}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=str(case["note"])))
        if case["id"] in REDTEAM_OPEN
        else case
        for case in REDTEAM
    ],
    ids=[str(case["id"]) for case in REDTEAM],
)
def test_redteam_case(case: dict[str, object]) -> None:
    gold, response = str(case["gold"]), str(case["response"])
    assert grade_completion(gold, response) is case["equivalent"], (
        f"[{case['category']}] extracted {extract_answer(response)!r}, gold {gold!r}: {case['note']}"
    )
