"""Wire schemas: importable without server dependencies, strict about shape, reward mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from reward_server.schemas import GradeRequest, RewardSpec, Status


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
