"""Reading a /v1/grade body (the step a worker process or a thread runs): every refusal names its field."""

from __future__ import annotations

import json

from reward_server.api.request_body import RequestRules, read_grade_request
from reward_server.backends.math_sympy import MathReference
from reward_server.code_grading import CodeReference, LimitPolicy, request_context
from reward_server.errors import BackendNotFound, BadRequest
from reward_server.grading import MAX_FIELDS
from reward_server.schemas import GradeRequest

RULES = RequestRules(
    max_groups=3,
    max_completions=5,
    references={
        "math": (MathReference, None),
        "code": (CodeReference, request_context(LimitPolicy(max_tests=2))),
    },
)


def refusal(body: bytes | str) -> BadRequest:
    result = read_grade_request(body.encode() if isinstance(body, str) else body, RULES)
    assert isinstance(result, BadRequest), result
    return result


def locs(error: BadRequest) -> list[list[object]]:
    return [field["loc"] for field in error.fields]


def group(**fields: object) -> dict[str, object]:
    return {"group_id": "g", "backend": "math", "reference": {"answer": "1"}, "completions": [], **fields}


def test_a_valid_body_keeps_its_raw_references() -> None:
    body = {"groups": [group(completions=["$\\boxed{1}$"])], "reward": {"correct": 2}}
    request = read_grade_request(json.dumps(body).encode("utf-8-sig"), RULES)  # a BOM is fine
    assert isinstance(request, GradeRequest)
    assert request.groups[0].reference == {"answer": "1"} and request.reward is not None


def test_the_first_unreadable_value_is_named_in_document_order() -> None:
    error = refusal('{"groups": [], "x": [1, {"y": NaN}], "z": -Infinity}')
    assert locs(error) == [["body", "x", 1, "y"]] and "NaN is not JSON" in str(error)


def test_a_long_integer_is_named_with_its_length() -> None:
    error = refusal('{"groups": [], "reward": {"correct": -' + "9" * 4301 + "}}")
    assert locs(error) == [["body", "reward", "correct"]] and "4301 digits" in str(error)


def test_malformed_json_names_its_position() -> None:
    error = refusal('{"groups": [}')
    assert locs(error) == [["body", 12]] and "line 1 column 13" in str(error)


def test_not_utf8() -> None:
    assert locs(refusal(b'{"groups": "\xff"}')) == [["body"]]


def test_a_lone_surrogate_is_named_in_plain_words() -> None:
    # pydantic says "unable to parse raw data as a unicode string" of a string field with a length limit.
    for body, loc in [
        (json.dumps({"groups": [group(group_id="\ud800")]}), ["body", "groups", 0, "group_id"]),
        (
            json.dumps({"groups": [group(reference={"answer": "x\udc00"})]}),
            ["body", "groups", 0, "reference", "answer"],
        ),
    ]:
        error = refusal(body)
        assert locs(error) == [loc] and "lone UTF-16 surrogate" in str(error), error


def test_an_unknown_backend_lists_the_valid_ones() -> None:
    error = refusal(json.dumps({"groups": [group(backend="lean")]}))
    assert isinstance(error, BackendNotFound) and "valid backends: code, math" in str(error)
    assert locs(error) == [["body", "groups", 0, "backend"]]


def test_references_are_validated_with_their_caps() -> None:
    tests = [{"input": "1", "output": "1"}] * 3
    error = refusal(
        json.dumps({"groups": [group(), group(group_id="h", backend="code", reference={"tests": tests})]})
    )
    assert locs(error) == [["body", "groups", 1, "reference", "tests"]]
    assert locs(refusal(json.dumps({"groups": [group(reference={"answer": 1})]}))) == [
        ["body", "groups", 0, "reference", "answer"]
    ]


def test_request_size_caps() -> None:
    assert locs(refusal(json.dumps({"groups": [group(group_id=str(i)) for i in range(4)]}))) == [
        ["body", "groups"]
    ]
    error = refusal(json.dumps({"groups": [group(completions=["a"] * 6)]}))
    assert locs(error) == [["body", "groups"]] and "6 completions" in str(error)


def test_an_error_lists_a_bounded_number_of_fields() -> None:
    error = refusal(json.dumps({"groups": [group(completions=list(range(1000)))]}))
    assert len(error.fields) == MAX_FIELDS
    assert error.fields[0]["loc"] == ["body", "groups", 0, "completions", 0]
