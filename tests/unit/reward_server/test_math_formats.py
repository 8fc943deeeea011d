"""Completions in the answer formats of public eval harnesses, graded against labeled gold answers.

`data/math/format_cases.jsonl` holds hand-written completions in the formats that lm-evaluation-harness
(minerva_math, gsm8k, hendrycks_math), Qwen2.5-Math, DeepSeek-Math, simple-evals, ToRA and the GSM8K
samples produce or extract (see `data/math/SOURCE.md`). Each case is labeled by the grading conventions:
is the completion's final answer the same answer as `gold`?
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reward_server.math_grading import extract_answer, grade_completion

FORMAT_CASES = Path(__file__).parents[3] / "data/math/format_cases.jsonl"
FIELDS = {"id", "source", "category", "gold", "response", "equivalent", "note"}


def _cases() -> list[dict[str, object]]:
    lines = FORMAT_CASES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


CASES = _cases()


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
