"""The reference of a code group: what a request may send, and the one normalized form grading uses.

Accepted forms of `reference` (exactly one of them; unknown keys are refused):

- normalized: `{"tests": [{"input": ..., "output": ...}], "fn_name": null | str, "time_limit_s": float,
  "memory_limit_mb": int}`. stdin problems: `input` is the stdin text and `output` the expected stdout.
  Call problems (`fn_name` set): `input` is the JSON list of positional arguments and `output` the JSON
  return value; the function is `fn_name` at module level or a method of `class Solution`.
- CodeContests' native fields: `public_tests`, `private_tests`, `generated_tests` (each `{"input": [...],
  "output": [...]}`, run in that order), optional `time_limit` (seconds, `{"seconds": .., "nanos": ..}`, or
  text such as "2 seconds") and `memory_limit_bytes` (0 means unknown).
- TACO's native `input_output`: a JSON string (or object) with `inputs`, `outputs` and optional `fn_name`.
  stdin inputs/outputs given as lists of lines are joined with newlines; call outputs may be wrapped in a
  one-element list (see `compare.call_result_matches`).
- `{"problem_id": ...}`: a problem loaded at start-up from a JSONL file (`load_problems`).

Limits: the reference's own time limit is multiplied by a factor (CodeContests' limits were set for C++); a
memory limit from the reference gets headroom for the interpreter (CodeContests adds 32 MiB too); without a
limit the server's defaults apply. The effective limits are part of the normalized problem, so they are
part of the cache key.

What a request may ask for (`LimitPolicy`, from the server settings; checked when a reference is validated
with `request_context(policy)`, as every request's is):

- a time or memory limit above the server's cap is refused, naming the field. The cap bounds what the
  reference asks for; the server's own scaling (factor, headroom) of an allowed limit is then clamped to
  the cap, since a dataset cannot know the server's factor (a CodeContests `time_limit` of 10 s with a
  factor of 10 runs with the 60 s cap, it is not refused);
- at most `max_tests` tests, counted before they are built (all three CodeContests lists together);
- at most `max_test_bytes` of test data (inputs and expected outputs), where every JSON value counts
  `VALUE_COST_BYTES` plus, for a string, its length: this bounds the bytes and the number of objects the
  server must hold, hash and send to the sandbox per reference (the densest JSON, `[{},{},...]`, is about
  20 million objects in 64 MB, seconds of work in any single call).

Problems loaded from the operator's own file (`load_problems`) are trusted: they are not held to these caps,
and their limits are clamped to the caps as before. Nesting deeper than `MAX_VALUE_DEPTH` is refused in
every case: pydantic cannot serialize a problem nested near 255 levels (its cache key, its queue job).

Every error names its field: structural errors come from pydantic with their location (e.g.
`private_tests.output`, `input_output`, `tests.0.input`); conflicts between forms are raised at the root
with the field names in the message.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reward_server.settings import RewardSettings
from sandbox.schemas import MAX_MEMORY_MB, MAX_TIME_LIMIT_S, MIN_MEMORY_MB

MAX_VALUE_DEPTH = 100  # nesting of one test's input or output (pydantic's serializer gives up near 255)
MAX_DURATION_SECONDS = 315_576_000_000  # google.protobuf.Duration's limit
VALUE_COST_BYTES = 64  # about what Python needs to hold one JSON value; a string adds its length


class CodeTest(BaseModel):
    """One test: stdin text and expected stdout, or positional arguments and the expected return value."""

    __test__ = False
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Any = Field(
        ..., description="stdin text; for call problems the JSON list of positional arguments."
    )
    output: Any = Field(..., description="Expected stdout text; for call problems the expected return value.")


class CodeProblem(BaseModel):
    """The normalized reference every form turns into; `grade` only ever sees this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: list[CodeTest] = Field(..., min_length=1)
    fn_name: str | None = Field(None, description="Call problems: the function or `Solution` method to call.")
    time_limit_s: float = Field(
        ...,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description="Time limit per test: CPU time of the program (see REWARD_CODE_WALL_TIME_FACTOR).",
    )
    memory_limit_mb: int = Field(..., ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB, description="Address space.")
    accept_wrapped_output: bool = Field(
        False, description="TACO convention: an expected call output `[x]` also accepts the return value `x`."
    )

    @property
    def mode(self) -> Literal["stdin", "call"]:
        return "stdin" if self.fn_name is None else "call"


def _setting(name: str) -> Any:
    """The default of a REWARD_CODE_* setting: a policy's defaults are the server's, defined once."""
    return RewardSettings.model_fields[name].default


@dataclass(frozen=True)
class LimitPolicy:
    """How reference limits become effective limits, and what a request may ask for (server settings)."""

    default_time_limit_s: float = _setting("code_default_time_limit_s")
    default_memory_mb: int = _setting("code_default_memory_mb")
    time_limit_factor: float = _setting("code_time_limit_factor")
    memory_headroom_mb: int = _setting("code_memory_headroom_mb")
    max_time_limit_s: float = _setting("code_max_time_limit_s")
    max_memory_mb: int = _setting("code_max_memory_mb")
    max_tests: int = _setting("code_max_tests")
    max_test_bytes: int = int(_setting("code_max_test_mb") * 2**20)

    @classmethod
    def from_settings(cls, settings: RewardSettings) -> LimitPolicy:
        return cls(
            default_time_limit_s=settings.code_default_time_limit_s,
            default_memory_mb=settings.code_default_memory_mb,
            time_limit_factor=settings.code_time_limit_factor,
            memory_headroom_mb=settings.code_memory_headroom_mb,
            max_time_limit_s=settings.code_max_time_limit_s,
            max_memory_mb=settings.code_max_memory_mb,
            max_tests=settings.code_max_tests,
            max_test_bytes=int(settings.code_max_test_mb * 2**20),
        )

    def time_limit_s(self, given_s: float | None) -> float:
        if given_s is None:
            return min(self.default_time_limit_s, self.max_time_limit_s)
        return min(given_s * self.time_limit_factor, self.max_time_limit_s)

    def memory_mb(self, given_mb: int | None) -> int:
        if given_mb is None:
            return min(self.default_memory_mb, self.max_memory_mb)
        return max(MIN_MEMORY_MB, min(given_mb + self.memory_headroom_mb, self.max_memory_mb))


def request_context(policy: LimitPolicy) -> dict[str, Any]:
    """The validation context that holds a request's reference to `policy`'s caps."""
    return {"policy": policy}


def _request_policy(info: ValidationInfo) -> LimitPolicy | None:
    policy = (info.context or {}).get("policy")
    return policy if isinstance(policy, LimitPolicy) else None


def _too_many_tests(count: int, policy: LimitPolicy) -> str:
    return f"{count} tests or more; at most {policy.max_tests} per reference (REWARD_CODE_MAX_TESTS)"


def _measure(value: Any, budget: int) -> tuple[int, int, str | None]:
    """(size, depth, flaw) of a JSON value: `VALUE_COST_BYTES` per value plus each string's length, its
    nesting, and why it cannot be test data (`_flaw`) or None.

    Stops early once the size passes `budget`, the depth passes `MAX_VALUE_DEPTH` or a flaw is found.
    Iterative, and walks each container through an iterator: a list of 20 million values is never copied.
    """
    size, deepest, flaw = _cost(value), 0, _flaw(value)
    stack: list[tuple[Iterator[Any], int]] = [(_children(value), 1)]
    while stack and size <= budget and deepest <= MAX_VALUE_DEPTH and flaw is None:
        children, depth = stack[-1]
        child = next(children, _END)
        if child is _END:
            stack.pop()
            continue
        size += _cost(child)
        deepest = max(deepest, depth)
        flaw = _flaw(child)
        if isinstance(child, list | dict):
            stack.append((_children(child), depth + 1))
    return size, deepest, flaw


_END = object()


def _cost(value: Any) -> int:
    if isinstance(value, str):
        return VALUE_COST_BYTES + len(value)
    if isinstance(value, dict):
        return VALUE_COST_BYTES + sum(len(key) for key in value)
    return VALUE_COST_BYTES


def _flaw(value: Any) -> str | None:
    """Why `value` (one JSON value, not its children) cannot be test data, or None.

    A non-finite float (`1e999` reads as inf) has no JSON form: the cache key would write it as null, the
    key of another reference. A lone UTF-16 surrogate (the escape `"\\ud800"`) has no UTF-8 form: no program
    reads or prints it, and the reference could not be hashed.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"holds {value}: test data must be finite numbers (1e999 reads as inf)"
    texts = value if isinstance(value, dict) else (value,) if isinstance(value, str) else ()
    for text in texts:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return "holds a lone UTF-16 surrogate (such as \\ud800), which has no UTF-8 form"
    return None


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return iter(value.values())
    return iter(value) if isinstance(value, list) else iter(())


def invalid(loc: tuple[str | int, ...], message: str, value: Any = None) -> ValidationError:
    """A ValidationError at `loc` (relative to the model or field being validated); raise it.

    Raised inside a validator, pydantic prefixes the location of the field, so errors always name their field.
    """
    details = InitErrorDetails(
        type=PydanticCustomError("invalid_reference", "{message}", {"message": message}), loc=loc, input=value
    )
    return ValidationError.from_exception_data("CodeReference", [details])


class CodeContestsTests(BaseModel):
    """CodeContests' `public_tests` / `private_tests` / `generated_tests`."""

    model_config = ConfigDict(extra="forbid")

    input: list[str] = Field(default_factory=list)
    output: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_length(self) -> CodeContestsTests:
        if len(self.input) != len(self.output):
            raise invalid(("output",), f"{len(self.input)} inputs but {len(self.output)} outputs")
        return self


class CodeContestsDuration(BaseModel):
    """A protobuf Duration, as CodeContests stores `time_limit`."""

    model_config = ConfigDict(extra="forbid")

    # Protobuf's own range (10,000 years); unbounded, `seconds + nanos / 1e9` overflowed past 1e308 (a 500).
    seconds: int = Field(0, ge=0, le=MAX_DURATION_SECONDS)
    nanos: int = Field(0, ge=0, lt=1_000_000_000)


class TacoInputOutput(BaseModel):
    """TACO's `input_output` once parsed."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(..., min_length=1)
    outputs: list[Any]
    fn_name: str | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _not_too_many(cls, inputs: Any, info: ValidationInfo) -> Any:
        policy = _request_policy(info)
        if policy is not None and isinstance(inputs, list) and len(inputs) > policy.max_tests:
            raise ValueError(_too_many_tests(len(inputs), policy))
        return inputs

    @field_validator("fn_name")
    @classmethod
    def _fn_name(cls, value: str | None) -> str | None:
        return _check_fn_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> TacoInputOutput:
        if len(self.inputs) != len(self.outputs):
            raise invalid(("outputs",), f"{len(self.inputs)} inputs but {len(self.outputs)} outputs")
        for index, (given_input, given_output) in enumerate(zip(self.inputs, self.outputs, strict=True)):
            if self.fn_name is not None:
                if not isinstance(given_input, list):
                    raise invalid(("inputs", index), "must be the list of positional arguments", given_input)
                continue
            for field, value in (("inputs", given_input), ("outputs", given_output)):
                if not _is_text(value):
                    raise invalid(
                        (field, index), "must be a string or a list of lines (stdin problem)", value
                    )
        return self


def _ceil_mib(size_bytes: int) -> int:
    """`size_bytes` in MiB, rounded up; in integers: a float division overflows past 1e308 bytes."""
    return -(-size_bytes // 2**20)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _lines(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "\n".join(value) + "\n"


def _check_fn_name(value: str | None) -> str | None:
    if value is not None and (not value.isidentifier() or keyword.iskeyword(value)):
        raise ValueError(f"{value!r} is not a Python function name")
    return value


# Read from the stripped text, with one `\s*`: three in a row (`\s*(unit)?\s*\.?\s*`) were cubic on spaces
# before a bad character ("1" + 2,000 spaces + "x" took 10 s, holding the body reader's GIL).
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(s|sec|secs|seconds?|ms|milliseconds?)?\.?", re.I)
_FORMS = {
    "problem_id": ("`problem_id`", ("problem_id",)),
    "tests": ("`tests`", ("tests",)),
    "codecontests": (
        "CodeContests' `public_tests`/`private_tests`/`generated_tests`",
        ("public_tests", "private_tests", "generated_tests"),
    ),
    "taco": ("TACO's `input_output`", ("input_output",)),
}


class CodeReference(BaseModel):
    """Reference of a code group: normalized tests, CodeContests' or TACO's native fields, or a problem id."""

    model_config = ConfigDict(extra="forbid")

    problem_id: str | None = Field(None, description="Id of a problem loaded from REWARD_CODE_PROBLEMS_PATH.")
    fn_name: str | None = Field(
        None, description="Call problems: function at module level or method of `class Solution`."
    )
    tests: list[CodeTest] | None = Field(
        None, min_length=1, description="Normalized tests: stdin/stdout texts, or args list/return value."
    )
    time_limit_s: float | None = Field(
        None, gt=0, description="Time limit per test in seconds (CPU time of the program, all its processes)."
    )
    memory_limit_mb: int | None = Field(None, ge=MIN_MEMORY_MB, description="Memory limit in MiB.")
    public_tests: CodeContestsTests | None = Field(None, description="CodeContests: run first.")
    private_tests: CodeContestsTests | None = Field(None, description="CodeContests.")
    generated_tests: CodeContestsTests | None = Field(None, description="CodeContests.")
    time_limit: float | CodeContestsDuration | str | None = Field(
        None, description='CodeContests: seconds, {"seconds": .., "nanos": ..} or text like "2 seconds".'
    )
    memory_limit_bytes: int | None = Field(None, ge=0, description="CodeContests; 0 means unknown.")
    input_output: TacoInputOutput | None = Field(
        None, description="TACO: JSON string (or object) with `inputs`, `outputs` and optional `fn_name`."
    )

    @model_validator(mode="before")
    @classmethod
    def _not_too_many_tests(cls, data: Any, info: ValidationInfo) -> Any:
        """Count the tests of a request before pydantic builds them: a million take seconds and gigabytes."""
        policy = _request_policy(info)
        if policy is None or not isinstance(data, dict):
            return data
        if isinstance(data.get("tests"), list) and len(data["tests"]) > policy.max_tests:
            raise invalid(("tests",), _too_many_tests(len(data["tests"]), policy))
        total = 0
        for field in _FORMS["codecontests"][1]:
            given = data.get(field)
            if isinstance(given, dict) and isinstance(given.get("input"), list):
                total += len(given["input"])
                if total > policy.max_tests:
                    raise invalid((field, "input"), _too_many_tests(total, policy))
        return data

    @field_validator("fn_name")
    @classmethod
    def _fn_name(cls, value: str | None) -> str | None:
        return _check_fn_name(value)

    @field_validator("tests")
    @classmethod
    def _tests_fit_mode(cls, tests: list[CodeTest] | None, info: ValidationInfo) -> list[CodeTest] | None:
        if "fn_name" not in info.data:
            return tests  # fn_name itself is invalid and reported; the mode is unknown
        call = info.data["fn_name"] is not None
        for index, test in enumerate(tests or []):
            if call and not isinstance(test.input, list):
                raise invalid((index, "input"), "must be the JSON list of positional arguments", test.input)
            for field in () if call else ("input", "output"):
                if not isinstance(getattr(test, field), str):
                    message = "must be a string (a stdin problem: no `fn_name`)"
                    raise invalid((index, field), message, getattr(test, field))
        return tests

    @field_validator("time_limit", mode="before")
    @classmethod
    def _within_a_duration(cls, value: Any) -> Any:
        """Seconds past a Duration's range, said once: an integer past 1e308 failed each member of the
        union ("time_limit.float: Input should be a valid number", then `.CodeContestsDuration`, `.str`)."""
        seconds = value.get("seconds") if isinstance(value, dict) else value
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > MAX_DURATION_SECONDS:
            raise ValueError(f"must be at most {MAX_DURATION_SECONDS} seconds (a protobuf Duration's range)")
        return value

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: float | CodeContestsDuration | str | None) -> float | None:
        if value is None or isinstance(value, int | float):
            seconds = value
        elif isinstance(value, CodeContestsDuration):
            seconds = value.seconds + value.nanos / 1e9
        else:
            match = _DURATION.fullmatch(value.strip())
            if match is None:
                raise ValueError(f"cannot read {value!r} as a duration (e.g. 2, 1.5 seconds, 500 ms)")
            seconds = float(match[1]) / (1000 if (match[2] or "s").lower().startswith("m") else 1)
        if seconds is not None and (not math.isfinite(seconds) or seconds < 0):
            raise ValueError("must be a finite, non-negative number of seconds")
        return seconds or None  # 0 means unknown, as in CodeContests

    @field_validator("input_output", mode="before")
    @classmethod
    def _parse_taco_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_form(self) -> CodeReference:
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        forms = [name for name, (_, fields) in _FORMS.items() if given & set(fields)]
        if len(forms) != 1:
            choices = ", ".join(label for label, _ in _FORMS.values())
            if not forms:
                raise invalid(("tests",), f"missing: give one of {choices}")
            second = next(f for f in _FORMS[forms[1]][1] if f in given)
            found = " and ".join(_FORMS[form][0] for form in forms)
            raise invalid((second,), f"give only one of {choices}; found {found}")
        form = forms[0]
        if form == "problem_id" and given - {"problem_id"}:
            raise invalid((min(given - {"problem_id"}),), "`problem_id` stands alone: remove this field")
        if self.time_limit_s is not None and self.time_limit is not None:
            raise invalid(("time_limit",), "give one of `time_limit_s` and `time_limit`")
        if self.memory_limit_mb is not None and self.memory_limit_bytes:
            raise invalid(("memory_limit_bytes",), "give one of `memory_limit_mb` and `memory_limit_bytes`")
        if form == "codecontests":
            if self.fn_name is not None:
                raise invalid(("fn_name",), "CodeContests tests are stdin/stdout: `fn_name` does not apply")
            if not any(t and t.input for t in (self.public_tests, self.private_tests, self.generated_tests)):
                first = next(f for f in _FORMS[form][1] if f in given)
                raise invalid((first,), "no tests: public, private and generated tests are all empty")
        if form == "taco" and self.fn_name is not None:
            assert self.input_output is not None
            if self.input_output.fn_name != self.fn_name:
                message = f"must be given inside `input_output` (which has {self.input_output.fn_name!r})"
                raise invalid(("fn_name",), message, self.fn_name)
        return self

    @model_validator(mode="after")
    def _within_the_caps(self, info: ValidationInfo) -> CodeReference:
        """Test data not too deep (always) nor too big, limits not above the caps (a request's reference)."""
        policy = _request_policy(info)
        budget = policy.max_test_bytes if policy is not None else 2**62
        total = 0
        for loc, value in self._test_values():
            size, depth, flaw = _measure(value, budget - total)
            if flaw is not None:
                raise invalid(loc, flaw)
            if depth > MAX_VALUE_DEPTH:
                raise invalid(loc, f"nested deeper than {MAX_VALUE_DEPTH} levels")
            total += size
            if total > budget:
                message = (
                    f"the tests hold more than {budget / 2**20:g} MiB up to here (every JSON value counts "
                    f"{VALUE_COST_BYTES} bytes plus a string's length; REWARD_CODE_MAX_TEST_MB)"
                )
                raise invalid(loc, message)
        if policy is not None:
            self._limits_within(policy)
        return self

    def _test_values(self) -> Iterator[tuple[tuple[str | int, ...], Any]]:
        """Every test input and expected output of the given form, with its location."""
        for index, test in enumerate(self.tests or []):
            yield ("tests", index, "input"), test.input
            yield ("tests", index, "output"), test.output
        for field in _FORMS["codecontests"][1]:
            group: CodeContestsTests | None = getattr(self, field)
            for side in ("input", "output"):
                for index, text in enumerate(getattr(group, side) if group is not None else []):
                    yield (field, side, index), text
        if self.input_output is not None:
            for side in ("inputs", "outputs"):
                for index, value in enumerate(getattr(self.input_output, side)):
                    yield ("input_output", side, index), value

    def _limits_within(self, policy: LimitPolicy) -> None:
        """A limit above the server's cap is refused: lowering it silently would grade a different problem."""
        time_field = "time_limit_s" if self.time_limit_s is not None else "time_limit"
        given_s = self.time_limit_s if self.time_limit_s is not None else self.time_limit
        if isinstance(given_s, int | float) and given_s > policy.max_time_limit_s:
            message = f"{given_s:g} s is above this server's cap of {policy.max_time_limit_s:g} s per test"
            raise invalid((time_field,), message + " (REWARD_CODE_MAX_TIME_LIMIT_S)", given_s)
        memory_mb, memory_field = self.memory_limit_mb, "memory_limit_mb"
        if memory_mb is None and self.memory_limit_bytes:
            memory_mb, memory_field = _ceil_mib(self.memory_limit_bytes), "memory_limit_bytes"
        if memory_mb is not None and memory_mb > policy.max_memory_mb:
            message = f"{memory_mb} MiB is above this server's cap of {policy.max_memory_mb} MiB"
            raise invalid((memory_field,), message + " (REWARD_CODE_MAX_MEMORY_MB)", memory_mb)

    def to_problem(self, policy: LimitPolicy) -> CodeProblem:
        """The normalized problem (not for `problem_id` references, which the backend resolves)."""
        if self.problem_id is not None:
            raise ValueError("a problem_id reference is resolved by the backend")
        accept_wrapped = False
        fn_name = self.fn_name
        if self.tests is not None:
            tests = self.tests
        elif self.input_output is not None:
            fn_name = self.input_output.fn_name
            accept_wrapped = fn_name is not None
            tests = [
                CodeTest(input=i, output=o)
                if fn_name is not None
                else CodeTest(input=_lines(i), output=_lines(o))
                for i, o in zip(self.input_output.inputs, self.input_output.outputs, strict=True)
            ]
        else:
            tests = list(self._codecontests_tests())
        time_limit = self.time_limit_s if self.time_limit_s is not None else self.time_limit
        memory_mb = self.memory_limit_mb
        if memory_mb is None and self.memory_limit_bytes:
            memory_mb = _ceil_mib(self.memory_limit_bytes)
        assert not isinstance(time_limit, CodeContestsDuration | str)  # normalized by `_time_limit`
        return CodeProblem(
            tests=tests,
            fn_name=fn_name,
            time_limit_s=policy.time_limit_s(time_limit),
            memory_limit_mb=policy.memory_mb(memory_mb),
            accept_wrapped_output=accept_wrapped,
        )

    def _codecontests_tests(self) -> Iterator[CodeTest]:
        for group in (self.public_tests, self.private_tests, self.generated_tests):
            if group is not None:
                for given_input, given_output in zip(group.input, group.output, strict=True):
                    yield CodeTest(input=given_input, output=given_output)


def normalize_reference(raw: Any, policy: LimitPolicy, problems: Mapping[str, CodeProblem]) -> CodeProblem:
    """Validate a raw reference of any form and return the normalized problem.

    Args:
        raw: the group's `reference` object.
        policy: default, scaled and capped limits, and the caps a request is held to.
        problems: the problems loaded at start-up, for `{"problem_id": ...}`.

    Raises:
        ValidationError: with the location of the offending field (e.g. `("private_tests",)`).

    Example:
        >>> reference = {"tests": [{"input": "1\\n", "output": "1\\n"}]}
        >>> normalize_reference(reference, LimitPolicy(), {}).time_limit_s
        4.0
    """
    reference = CodeReference.model_validate(raw, context=request_context(policy))
    if reference.problem_id is None:
        return reference.to_problem(policy)
    problem = problems.get(reference.problem_id)
    if problem is None:
        message = f"unknown problem_id ({len(problems)} problems loaded)"
        raise invalid(("problem_id",), message, reference.problem_id)
    return problem


REFERENCE_KEYS = frozenset(CodeReference.model_fields) - {"problem_id"}


def load_problems(path: Path, policy: LimitPolicy) -> dict[str, CodeProblem]:
    """Read `{id: problem}` from JSONL rows with an `id` and one reference form.

    The dev_problems.jsonl format (`id`, `format`, `fn_name`, `tests`, plus `prompt`, `solutions`, ...) is
    accepted as it is: keys that are not reference fields are ignored, and `format` must agree with `fn_name`.

    Raises:
        ValueError: naming the file, line and field of a bad row.
    """
    problems: dict[str, CodeProblem] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            problem_id = row.get("id", row.get("problem_id"))
            if problem_id is None:
                raise ValueError(f"{path}:{number}: a problem needs an `id`")
            fields = {key: value for key, value in row.items() if key in REFERENCE_KEYS}
            try:
                problem = CodeReference.model_validate(fields).to_problem(policy)
            except ValidationError as exc:
                raise ValueError(f"{path}:{number} ({problem_id}): {exc}") from None
            if row.get("format") is not None and row["format"] != problem.mode:
                raise ValueError(
                    f"{path}:{number} ({problem_id}): format {row['format']!r} but {problem.mode}"
                )
            problems[str(problem_id)] = problem
    return problems
