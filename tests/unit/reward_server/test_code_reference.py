"""Code references: the four accepted forms normalize to one model; bad ones name their field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reward_server.code_grading import (
    CodeProblem,
    CodeReference,
    LimitPolicy,
    load_problems,
    normalize_reference,
)

POLICY = LimitPolicy(default_time_limit_s=4.0, default_memory_mb=1024, memory_headroom_mb=32)
STDIN_TESTS = [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5\n", "output": "10\n"}]


def normalize(raw: dict[str, Any], problems: dict[str, CodeProblem] | None = None) -> CodeProblem:
    return normalize_reference(raw, POLICY, problems or {})


def error_locs(raw: dict[str, Any], problems: dict[str, CodeProblem] | None = None) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        normalize(raw, problems)
    return [tuple(error["loc"]) for error in info.value.errors()]


def test_normalized_stdin_form() -> None:
    problem = normalize({"tests": STDIN_TESTS, "time_limit_s": 2, "memory_limit_mb": 256})
    assert problem.mode == "stdin" and problem.fn_name is None
    assert [(t.input, t.output) for t in problem.tests] == [("1 2\n", "3\n"), ("5 5\n", "10\n")]
    assert problem.time_limit_s == 2.0
    assert problem.memory_limit_mb == 256 + 32  # headroom for the interpreter
    assert not problem.accept_wrapped_output


def test_normalized_call_form_and_defaults() -> None:
    problem = normalize(
        {"fn_name": "add", "tests": [{"input": [1, 2], "output": 3}, {"input": [[]], "output": []}]}
    )
    assert problem.mode == "call" and problem.fn_name == "add"
    assert problem.tests[1].input == [[]]
    assert (problem.time_limit_s, problem.memory_limit_mb) == (4.0, 1024)


def test_codecontests_native_form() -> None:
    raw = {
        "public_tests": {"input": ["1\n"], "output": ["one\n"]},
        "private_tests": {"input": ["2\n"], "output": ["two\n"]},
        "generated_tests": {"input": ["3\n", "4\n"], "output": ["three\n", "four\n"]},
        "time_limit": {"seconds": 2, "nanos": 500_000_000},
        "memory_limit_bytes": 256_000_000,
    }
    problem = normalize(raw)
    assert [t.output for t in problem.tests] == ["one\n", "two\n", "three\n", "four\n"]  # public first
    assert problem.time_limit_s == 2.5
    assert problem.memory_limit_mb == 245 + 32  # 256e6 bytes = 244.1 MiB, rounded up


@pytest.mark.parametrize(
    ("time_limit", "seconds"),
    [
        (3, 3.0),
        (1.5, 1.5),
        ("2 seconds", 2.0),
        (" 1 second. ", 1.0),
        ("500 ms", 0.5),
        ("2.5s", 2.5),
        ({"seconds": 1}, 1.0),
    ],
)
def test_codecontests_time_limit_forms(time_limit: Any, seconds: float) -> None:
    raw = {"private_tests": {"input": ["1"], "output": ["1"]}, "time_limit": time_limit}
    assert normalize(raw).time_limit_s == seconds


def test_a_long_time_limit_text_is_refused_quickly() -> None:
    import time

    # The duration pattern was cubic on spaces before a bad character: 2,000 took 10 s, this about 20 min.
    start = time.perf_counter()
    assert error_locs({"tests": STDIN_TESTS, "time_limit": "1" + " " * 10_000 + "x"}) == [("time_limit",)]
    assert time.perf_counter() - start < 5.0


def test_unknown_limits_fall_back_to_defaults() -> None:
    raw = {"private_tests": {"input": ["1"], "output": ["1"]}, "time_limit": None, "memory_limit_bytes": 0}
    problem = normalize(raw)
    assert (problem.time_limit_s, problem.memory_limit_mb) == (4.0, 1024)


def test_limits_are_scaled_and_clamped_to_the_caps() -> None:
    policy = LimitPolicy(
        time_limit_factor=3.0, max_time_limit_s=10.0, max_memory_mb=512, memory_headroom_mb=32
    )
    problem = normalize_reference(
        {"tests": STDIN_TESTS, "time_limit_s": 2, "memory_limit_mb": 300}, policy, {}
    )
    assert (problem.time_limit_s, problem.memory_limit_mb) == (6.0, 332)
    # Allowed limits that the server's own factor and headroom push past the caps run at the caps.
    problem = normalize_reference(
        {"tests": STDIN_TESTS, "time_limit_s": 5, "memory_limit_mb": 500}, policy, {}
    )
    assert (problem.time_limit_s, problem.memory_limit_mb) == (10.0, 512)


@pytest.mark.parametrize(
    ("limits", "loc"),
    [
        ({"time_limit_s": 10.5}, ("time_limit_s",)),
        ({"time_limit": "11 seconds"}, ("time_limit",)),
        ({"time_limit": {"seconds": 3600}}, ("time_limit",)),
        ({"memory_limit_mb": 513}, ("memory_limit_mb",)),
        ({"memory_limit_bytes": 2**40}, ("memory_limit_bytes",)),
    ],
)
def test_limits_above_the_caps_are_refused_naming_the_field(
    limits: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    policy = LimitPolicy(max_time_limit_s=10.0, max_memory_mb=512)
    raw = {"private_tests": {"input": ["1"], "output": ["1"]}, **limits}
    with pytest.raises(ValidationError, match="above this server's cap") as info:
        normalize_reference(raw, policy, {})
    assert [tuple(error["loc"]) for error in info.value.errors()] == [loc]


def test_loaded_problems_are_trusted_and_clamped(tmp_path: Path) -> None:
    path = tmp_path / "problems.jsonl"
    tests = [{"input": "1", "output": "1"}] * 5
    path.write_text(json.dumps({"id": "p", "tests": tests, "time_limit_s": 100, "memory_limit_mb": 9000}))
    policy = LimitPolicy(max_time_limit_s=10.0, max_memory_mb=512, max_tests=3)
    problem = load_problems(path, policy)["p"]
    assert (len(problem.tests), problem.time_limit_s, problem.memory_limit_mb) == (5, 10.0, 512)


SMALL = LimitPolicy(max_tests=3, max_test_bytes=1000)
FOUR_TACO = {"inputs": ["1"] * 4, "outputs": ["1"] * 4}


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ({"tests": STDIN_TESTS * 2}, ("tests",)),
        (
            {
                "public_tests": {"input": ["1"] * 2, "output": ["1"] * 2},
                "private_tests": {"input": ["1"] * 2, "output": ["1"] * 2},
            },
            ("private_tests", "input"),
        ),
        ({"input_output": json.dumps(FOUR_TACO)}, ("input_output", "inputs")),
        ({"input_output": FOUR_TACO}, ("input_output", "inputs")),
    ],
)
def test_too_many_tests_are_refused_naming_the_field(raw: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError, match="REWARD_CODE_MAX_TESTS") as info:
        normalize_reference(raw, SMALL, {})
    assert [tuple(error["loc"]) for error in info.value.errors()] == [loc]


def test_tests_are_counted_before_they_are_built() -> None:
    # A million malformed tests: one error about their number, not two million about each of them.
    with pytest.raises(ValidationError) as info:
        normalize_reference({"tests": [{}] * 1_000_000}, LimitPolicy(), {})
    assert [tuple(error["loc"]) for error in info.value.errors()] == [("tests",)]


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ({"tests": [{"input": "x" * 2000, "output": "1"}]}, ("tests", 0, "input")),
        ({"tests": [*STDIN_TESTS[:1], {"input": "1", "output": "y" * 900}]}, ("tests", 1, "output")),
        ({"fn_name": "f", "tests": [{"input": [[{}] * 20], "output": 1}]}, ("tests", 0, "input")),
        ({"fn_name": "f", "tests": [{"input": [], "output": {"k" * 2000: 1}}]}, ("tests", 0, "output")),
        ({"public_tests": {"input": ["1"], "output": ["z" * 2000]}}, ("public_tests", "output", 0)),
        (
            {"input_output": {"fn_name": "f", "inputs": [[1], [list(range(30))]], "outputs": [1, 1]}},
            ("input_output", "inputs", 1),
        ),
    ],
)
def test_test_data_size_is_capped_naming_the_test(raw: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError, match="REWARD_CODE_MAX_TEST_MB") as info:
        normalize_reference(raw, SMALL, {})
    assert [tuple(error["loc"]) for error in info.value.errors()] == [loc]


def test_deeply_nested_test_data_is_refused_naming_the_test() -> None:
    deep = json.loads("[" * 300 + "]" * 300)
    raw = {"fn_name": "f", "tests": [{"input": [1], "output": 1}, {"input": [deep], "output": 1}]}
    with pytest.raises(ValidationError, match="nested deeper than 100") as info:
        normalize_reference(raw, POLICY, {})
    assert [tuple(error["loc"]) for error in info.value.errors()] == [("tests", 1, "input")]
    # Loaded problems too: such a problem could not be serialized (cache key, queue job).
    with pytest.raises(ValidationError, match="nested deeper"):
        CodeReference.model_validate(raw)
    # 99 levels inside the argument list are fine, and serialize.
    fine = json.loads("[" * 99 + "]" * 99)
    problem = normalize_reference({"fn_name": "f", "tests": [{"input": [fine], "output": 1}]}, POLICY, {})
    assert problem.model_dump_json().count("[") == 101


@pytest.mark.parametrize(
    ("raw", "loc", "why"),
    [
        # 1e999 reads as inf; the cache key wrote it (and NaN) as null, the key of another reference.
        (
            {"fn_name": "f", "tests": [{"input": [1], "output": float("inf")}]},
            ("tests", 0, "output"),
            "finite",
        ),
        (
            {"fn_name": "f", "tests": [{"input": [[float("-inf")]], "output": 1}]},
            ("tests", 0, "input"),
            "finite",
        ),
        (
            {"input_output": '{"fn_name": "f", "inputs": [[NaN]], "outputs": [1]}'},
            ("input_output", "inputs", 0),
            "finite",
        ),
        # A lone surrogate has no UTF-8 form: hashing the reference raised (a 500).
        ({"tests": [{"input": "\ud800", "output": "1"}]}, ("tests", 0, "input"), "surrogate"),
        (
            {"fn_name": "f", "tests": [{"input": [{"\udc00": 1}], "output": 1}]},
            ("tests", 0, "input"),
            "surrogate",
        ),
        (
            {"public_tests": {"input": ["1"], "output": ["a\ud800"]}},
            ("public_tests", "output", 0),
            "surrogate",
        ),
        (
            {"input_output": '{"inputs": ["\\ud800"], "outputs": ["1"]}'},
            ("input_output", "inputs", 0),
            "surrogate",
        ),
    ],
)
def test_test_data_json_cannot_hold_is_refused_naming_the_test(
    raw: dict[str, Any], loc: tuple[Any, ...], why: str
) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        normalize(raw)
    assert [tuple(error["loc"]) for error in info.value.errors()] == [loc]


@pytest.mark.parametrize(
    ("limits", "loc"),
    [
        # Each overflowed a float conversion (OverflowError: a 500) before it was compared with the cap.
        ({"time_limit": {"seconds": 10**400}}, ("time_limit",)),
        ({"memory_limit_bytes": 10**400}, ("memory_limit_bytes",)),
        ({"time_limit": 1e400}, ("time_limit",)),
        # Named three times, once per member of the union (`time_limit.float`, ...): now once.
        ({"time_limit": 10**400}, ("time_limit",)),
    ],
)
def test_huge_limits_are_refused_naming_the_field(limits: dict[str, Any], loc: tuple[Any, ...]) -> None:
    raw = {"public_tests": {"input": ["1"], "output": ["1"]}, **limits}
    assert error_locs(raw) == [loc]


def test_caps_hold_requests_only() -> None:
    assert CodeReference.model_validate({"tests": STDIN_TESTS * 10}).tests is not None


def test_taco_stdin_form() -> None:
    io = {"inputs": ["1 2\n", ["3 4", "5 6"]], "outputs": ["3\n", ["7", "11"]]}
    problem = normalize({"input_output": json.dumps(io)})
    assert problem.mode == "stdin"
    assert [(t.input, t.output) for t in problem.tests] == [("1 2\n", "3\n"), ("3 4\n5 6\n", "7\n11\n")]
    assert not problem.accept_wrapped_output


def test_taco_call_form_accepts_wrapped_outputs() -> None:
    io = {"fn_name": "solve", "inputs": [[1, 2], [[1, 2]]], "outputs": [[3], [[2, 1]]]}
    for given in (json.dumps(io), io):  # the JSON string as TACO stores it, or the object
        problem = normalize({"input_output": given})
        assert problem.fn_name == "solve" and problem.accept_wrapped_output
        assert problem.tests[0].input == [1, 2] and problem.tests[0].output == [3]
    assert normalize({"input_output": json.dumps(io), "fn_name": "solve"}).fn_name == "solve"


def test_problem_id_form() -> None:
    loaded = normalize({"tests": STDIN_TESTS})
    assert normalize({"problem_id": "p1"}, {"p1": loaded}) is loaded


def test_forms_serialize_to_one_cache_key() -> None:
    inline = normalize({"tests": STDIN_TESTS})
    native = normalize({"public_tests": {"input": ["1 2\n", "5 5\n"], "output": ["3\n", "10\n"]}})
    assert inline.model_dump_json() == native.model_dump_json()


BAD = [
    ({}, ("tests",)),
    ({"tests": []}, ("tests",)),
    ({"tests": [{"input": "1"}]}, ("tests", 0, "output")),
    ({"tests": [{"input": "1", "output": "1", "expected": "1"}]}, ("tests", 0, "expected")),
    ({"tests": [{"input": [1], "output": "1"}]}, ("tests", 0, "input")),  # stdin problem needs text
    ({"tests": [{"input": "1", "output": 1}]}, ("tests", 0, "output")),
    ({"fn_name": "f", "tests": [{"input": "1", "output": 1}]}, ("tests", 0, "input")),  # args must be a list
    ({"fn_name": "not a name", "tests": [{"input": [], "output": 1}]}, ("fn_name",)),
    ({"fn_name": "class", "tests": [{"input": [], "output": 1}]}, ("fn_name",)),
    ({"tests": STDIN_TESTS, "time_limit_s": 0}, ("time_limit_s",)),
    ({"tests": STDIN_TESTS, "time_limit_s": -1}, ("time_limit_s",)),
    ({"tests": STDIN_TESTS, "memory_limit_mb": 4}, ("memory_limit_mb",)),
    ({"tests": STDIN_TESTS, "time_limit_s": 1, "time_limit": 2}, ("time_limit",)),
    ({"tests": STDIN_TESTS, "memory_limit_mb": 64, "memory_limit_bytes": 2**26}, ("memory_limit_bytes",)),
    ({"tests": STDIN_TESTS, "answer": "3"}, ("answer",)),
    ({"tests": STDIN_TESTS, "public_tests": {"input": ["1"], "output": ["1"]}}, ("public_tests",)),
    ({"public_tests": {"input": ["1", "2"], "output": ["1"]}}, ("public_tests", "output")),
    ({"private_tests": {"input": ["1"], "output": []}}, ("private_tests", "output")),
    ({"generated_tests": {"input": [1], "output": ["1"]}}, ("generated_tests", "input", 0)),
    (
        {"public_tests": {"input": [], "output": []}, "private_tests": {"input": [], "output": []}},
        ("public_tests",),
    ),
    ({"public_tests": {"input": ["1"], "output": ["1"]}, "fn_name": "f"}, ("fn_name",)),
    ({"private_tests": {"input": ["1"], "output": ["1"]}, "time_limit": "soon"}, ("time_limit",)),
    ({"private_tests": {"input": ["1"], "output": ["1"]}, "time_limit": {"seconds": -1}}, ("time_limit",)),
    ({"input_output": "{not json"}, ("input_output",)),
    ({"input_output": "[1, 2]"}, ("input_output",)),
    ({"input_output": json.dumps({"inputs": ["1"], "outputs": []})}, ("input_output", "outputs")),
    ({"input_output": json.dumps({"inputs": [], "outputs": []})}, ("input_output", "inputs")),
    ({"input_output": json.dumps({"inputs": ["1"]})}, ("input_output", "outputs")),
    ({"input_output": json.dumps({"inputs": [1], "outputs": ["1"]})}, ("input_output", "inputs", 0)),
    (
        {"input_output": json.dumps({"fn_name": "f", "inputs": ["1"], "outputs": [1]})},
        ("input_output", "inputs", 0),
    ),
    (
        {"input_output": json.dumps({"fn_name": "1f", "inputs": [[1]], "outputs": [1]})},
        ("input_output", "fn_name"),
    ),
    (
        {"input_output": json.dumps({"inputs": [[1]], "outputs": [1], "fn_name": "f"}), "fn_name": "g"},
        ("fn_name",),
    ),
    ({"problem_id": "p1", "tests": STDIN_TESTS}, ("tests",)),
    ({"problem_id": "p1", "time_limit_s": 3}, ("time_limit_s",)),
    ({"problem_id": "nope"}, ("problem_id",)),
    ({"problem_id": 17}, ("problem_id",)),
]


@pytest.mark.parametrize(("raw", "loc"), BAD)
def test_bad_references_name_their_field(raw: dict[str, Any], loc: tuple[Any, ...]) -> None:
    problems = {"p1": normalize({"tests": STDIN_TESTS})}
    locs = error_locs(raw, problems)
    assert any(found[: len(loc)] == loc for found in locs), locs


def test_conflicting_forms_name_them_in_the_message() -> None:
    with pytest.raises(ValidationError, match="input_output"):
        normalize({"tests": STDIN_TESTS, "input_output": json.dumps({"inputs": ["1"], "outputs": ["1"]})})


def test_explicit_nulls_are_absent_fields() -> None:
    problem = normalize({"tests": STDIN_TESTS, "fn_name": None, "public_tests": None, "input_output": None})
    assert problem.mode == "stdin"


def test_reference_schema_lists_every_form() -> None:
    properties = CodeReference.model_json_schema()["properties"]
    for field in (
        "tests",
        "fn_name",
        "time_limit_s",
        "memory_limit_mb",
        "public_tests",
        "private_tests",
        "generated_tests",
        "time_limit",
        "memory_limit_bytes",
        "input_output",
        "problem_id",
    ):
        assert field in properties


def test_load_problems_reads_the_dev_format(tmp_path: Path) -> None:
    rows = [
        {
            "id": "a",
            "format": "stdin",
            "fn_name": None,
            "prompt": "...",
            "solutions": [],
            "tests": STDIN_TESTS,
        },
        {"id": "b", "format": "call", "fn_name": "f", "tests": [{"input": [1], "output": 2}]},
        {"id": "c", "public_tests": {"input": ["1"], "output": ["1"]}, "time_limit": {"seconds": 2}},
    ]
    path = tmp_path / "problems.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    problems = load_problems(path, POLICY)
    assert sorted(problems) == ["a", "b", "c"]
    assert problems["b"].fn_name == "f" and problems["c"].time_limit_s == 2.0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"format": "stdin", "tests": STDIN_TESTS}, "needs an `id`"),
        ({"id": "x", "format": "call", "fn_name": None, "tests": STDIN_TESTS}, "format 'call'"),
        ({"id": "x", "tests": []}, "problems.jsonl:1 \\(x\\)"),
    ],
)
def test_load_problems_names_the_bad_line(tmp_path: Path, row: dict[str, Any], message: str) -> None:
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=message):
        load_problems(path, POLICY)


def test_loads_the_shared_dev_problems(shared_data: Path) -> None:
    problems = load_problems(shared_data / "code" / "dev_problems.jsonl", POLICY)
    assert len(problems) == 37
    assert problems["humaneval-55"].fn_name == "fib"
    assert len(problems["codecontests-1139C"].tests) == 95
