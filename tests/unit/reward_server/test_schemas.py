"""Wire schemas: importable without server dependencies, strict about shape, reward mapping."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from reward_server.schemas import CompletionResult, GradeRequest, GradeResponse, RewardSpec, Status


def test_importing_schemas_loads_no_server_dependency() -> None:
    code = (
        "import sys, reward_server.schemas\n"
        "heavy = {'fastapi', 'redis', 'sympy', 'torch', 'starlette', 'uvicorn'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_error_never_gets_a_reward() -> None:
    spec = RewardSpec()
    assert spec.for_status(Status.ERROR) is None
    assert spec.for_status(Status.CORRECT) == 1.0
    assert spec.for_status(Status.INCORRECT) == -1.0
    assert spec.for_status(Status.NO_ANSWER) == -1.0
    assert RewardSpec(correct=1, incorrect=0, no_answer=-0.5).for_status(Status.NO_ANSWER) == -0.5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "groups"),
        ({"groups": [{"group_id": "a", "backend": "math", "reference": {}}]}, "completions"),
        (
            {"groups": [{"group_id": "a", "backend": "math", "reference": {}, "completions": "x"}]},
            "completions",
        ),
        ({"groups": [{"group_id": "a", "backend": "", "reference": {}, "completions": []}]}, "backend"),
        ({"groups": [], "surprise": 1}, "surprise"),
    ],
)
def test_bad_shapes_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        GradeRequest.model_validate(body)
    assert any(field in map(str, err["loc"]) for err in info.value.errors())


def test_duplicate_group_ids_are_refused() -> None:
    group = {"group_id": "a", "backend": "math", "reference": {}, "completions": []}
    with pytest.raises(ValidationError, match="duplicate group_id"):
        GradeRequest.model_validate({"groups": [group, group]})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["correct", "incorrect", "no_answer"])
def test_non_finite_rewards_are_refused_naming_the_field(literal: str, field: str) -> None:
    # Python's json reads NaN and Infinity, and 1e999 overflows to inf: all must be refused.
    raw = json.loads(f'{{"groups": [], "reward": {{"{field}": {literal}}}}}')
    with pytest.raises(ValidationError) as info:
        GradeRequest.model_validate(raw)
    assert [tuple(err["loc"]) for err in info.value.errors()] == [("reward", field)]


def test_a_non_finite_reward_is_never_sent_nor_accepted() -> None:
    with pytest.raises(ValidationError):
        CompletionResult(status=Status.CORRECT, reward=math.nan)
    answer = '{"groups": [{"group_id": "g", "results": [{"status": "correct", "reward": %s}], '
    answer += '"answer_classes": []}], "backends": {}}'
    assert GradeResponse.model_validate_json(answer % "1.0").groups[0].results[0].reward == 1.0
    for literal in ("NaN", "Infinity"):
        with pytest.raises(ValidationError, match="reward"):
            GradeResponse.model_validate_json(answer % literal)


def test_a_group_names_the_backend_version_that_graded_it_and_may_leave_it_out() -> None:
    """`backend_version` is optional: the answers of a server from before it still parse (the trainer's)."""
    group = {"group_id": "g", "results": [{"status": "correct", "reward": 1.0}], "answer_classes": []}
    old = GradeResponse.model_validate({"groups": [group], "backends": {"math": "0.1.0"}})
    assert old.groups[0].backend_version is None
    new = GradeResponse.model_validate(
        {"groups": [{**group, "backend_version": "0.1.0+rules.3f9a2c1b"}], "backends": {}}
    )
    assert new.groups[0].backend_version == "0.1.0+rules.3f9a2c1b"
    assert json.loads(new.model_dump_json())["groups"][0]["backend_version"] == "0.1.0+rules.3f9a2c1b"
