"""Reading request bodies (`POST /v1/grade`, and the compat routes) without holding up the event loop.

Why not FastAPI's own body parsing: it runs `json.loads` and the pydantic validation on the event loop, and
each is one C call that holds the GIL from start to end, so even a thread would not help. Measured on the
2-core dev machine: 64 MiB of `[{},{},...]` takes 5 s in `json.loads`, and a reference of a million tests
about 4 s to validate; /healthz waited that long.

So a body over `INLINE_MAX_BYTES` is parsed and validated in a worker process (`DeadlinePool`: killed after
`PARSE_TIMEOUT_S`, with an address-space limit), which hands back a `GradeRequest` whose every reference
has passed its backend's validation and caps (`RequestRules`): what the server then unpickles and
re-validates is bounded by those caps. A smaller body is parsed in a thread, where its worst case is tens of
milliseconds.

Everything wrong is a `BadRequest` naming its field, as FastAPI's own errors did (`["body", ...]`):
malformed JSON (with its position), NaN/Infinity literals and integers too long for Python (4,300 digits;
Python's json raises without saying where), nesting too deep for the parser, too many groups or
completions, an unknown backend, an invalid or too large reference. A body too complex to read within the
worker's time or memory is a `BodyTooLarge` (413).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reward_server.deadline_pool import DeadlinePool, JobFailed, JobTimeout, WorkerCrashed
from reward_server.errors import BackendNotFound, BadRequest, BodyTooLarge
from reward_server.grading import MAX_FIELDS, check_request_size, error_message, reference_error
from reward_server.schemas import GradeRequest

log = logging.getLogger(__name__)

INLINE_MAX_BYTES = 1024 * 1024  # parsed in a thread up to this size: at worst ~0.1 s holding the GIL
PARSE_TIMEOUT_S = 60.0
T = TypeVar("T")
BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass(frozen=True)
class RequestRules:
    """What a request may hold, as picklable data (the worker process has no backends).

    `references` maps each backend name to its reference model and the validation context its caps need
    (a backend's optional `reference_context`).
    """

    max_groups: int
    max_completions: int
    references: Mapping[str, tuple[type[BaseModel], dict[str, Any] | None]]


# Turns a body into what a route needs, or returns (never raises) the BadRequest that refuses it: it may run
# in a worker process, whose exceptions would cross back as mere text (`deadline_pool.JobFailed`).
BodyParser = Callable[[bytes, RequestRules], T | BadRequest]


def returns_refusal(parse: Callable[..., T]) -> Callable[..., T | BadRequest]:
    """`parse` as a BodyParser: the BadRequest it raises is returned instead (a MemoryError becomes a
    BodyTooLarge), so that it crosses a process boundary intact. The wrapper keeps `parse`'s name, so a
    module-level parser decorated with it still pickles."""

    @functools.wraps(parse)
    def parser(*args: Any, **kwargs: Any) -> T | BadRequest:
        try:
            return parse(*args, **kwargs)
        except BadRequest as exc:
            return exc
        except MemoryError:
            return BodyTooLarge(
                "the body is too complex to read within this server's memory",
                [{"loc": ["body"], "msg": "too complex"}],
            )

    return parser


@returns_refusal
def read_grade_request(body: bytes, rules: RequestRules) -> GradeRequest:
    """The validated request, or the BadRequest that refuses it (returned: it crosses a process boundary)."""
    return _validate(parse_json(body), rules)


def read_in_worker(reader: BodyParser[T], body: bytes, rules: RequestRules) -> T | BadRequest:
    """`reader(body, rules)` in a worker process, without the cyclic garbage collector: JSON holds no cycles,
    and collecting while tens of millions of containers are built took longer than building them (13 s
    instead of 5 s for 64 MiB of `[{},{},...]`). Never in the server's own process: the switch is global."""
    gc.disable()
    try:
        return reader(body, rules)
    finally:
        gc.enable()


class _Unreadable:
    """What a JSON value that Python must not read becomes while parsing, so that it can be located."""

    def __init__(self, why: str) -> None:
        self.why = why


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; raises BadRequest naming where it is malformed or unreadable."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the body must be UTF-8 JSON: {exc.reason} at byte {exc.start}",
            [{"loc": ["body"], "msg": "not UTF-8", "type": "json_invalid"}],
        ) from None
    unreadable: list[_Unreadable] = []

    def refuse(why: str) -> _Unreadable:
        unreadable.append(_Unreadable(why))
        return unreadable[-1]

    def constant(name: str) -> _Unreadable:
        return refuse(f"{name} is not JSON: rewards and test data must be finite numbers")

    def integer(digits: str) -> int | _Unreadable:
        try:
            return int(digits)
        except ValueError:  # longer than sys.get_int_max_str_digits(): converting it would take forever
            limit = sys.get_int_max_str_digits()
            return refuse(f"an integer of {len(digits.lstrip('-'))} digits; at most {limit} are read")

    try:
        try:
            value = json.loads(text, parse_constant=constant)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError) or "digits" not in str(exc):
                raise
            # Python's json refuses a too long integer without saying where: read it again, slowly,
            # turning each such integer into a marker whose location is then reported.
            value = json.loads(text, parse_constant=constant, parse_int=integer)
    except json.JSONDecodeError as exc:
        message = f"malformed JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise BadRequest(
            message, [{"loc": ["body", exc.pos], "msg": exc.msg, "type": "json_invalid"}]
        ) from None
    except RecursionError:
        message = (
            f"the body is nested too deeply for this server's JSON parser (about {sys.getrecursionlimit()})"
        )
        raise BadRequest(message, [{"loc": ["body"], "msg": "nested too deeply"}]) from None
    if unreadable:
        path, marker = _first_unreadable(value)
        where = ".".join(map(str, ["body", *path]))
        raise BadRequest(
            f"invalid request: {where}: {marker.why}", [{"loc": ["body", *path], "msg": marker.why}]
        )
    return value


def _first_unreadable(value: Any) -> tuple[list[str | int], _Unreadable]:
    """The first `_Unreadable` in `value` (document order) and its path; iterative: `value` may be deep."""
    if isinstance(value, _Unreadable):
        return [], value
    path: list[str | int] = []
    stack = [_children(value)]
    while stack:
        step = next(stack[-1], None)
        if step is None:  # this container is done
            stack.pop()
            if path:
                path.pop()
            continue
        key, item = step
        if isinstance(item, _Unreadable):
            return [*path, key], item
        if isinstance(item, dict | list):
            path.append(key)
            stack.append(_children(item))
    raise ValueError("no unreadable value")


def _children(item: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(item, dict):
        return iter(item.items())
    return enumerate(item) if isinstance(item, list) else iter(())


def validate_body(model: type[BodyT], value: Any) -> BodyT:
    """`value` as `model`, or a BadRequest (422) naming the first invalid field of the body."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)[:MAX_FIELDS]
        fields = [
            {"loc": ["body", *err["loc"]], "msg": error_message(err), "type": err["type"]} for err in errors
        ]
        where = ".".join(map(str, fields[0]["loc"]))
        raise BadRequest(f"invalid request: {where}: {fields[0]['msg']}", fields) from None


def _validate(value: Any, rules: RequestRules) -> GradeRequest:
    request = validate_body(GradeRequest, value)
    check_request_size(request, rules.max_groups, rules.max_completions)
    for index, group in enumerate(request.groups):
        if group.backend not in rules.references:
            valid = ", ".join(sorted(rules.references)) or "none"
            message = f"unknown backend {group.backend!r}; valid backends: {valid}"
            raise BackendNotFound(message, [{"loc": ["body", "groups", index, "backend"], "msg": message}])
        model, context = rules.references[group.backend]
        try:
            model.model_validate(group.reference, context=context)
        except ValidationError as exc:
            raise reference_error(index, group.backend, exc) from None
    return request


class RequestBodyReader:
    """Turns bodies into validated `GradeRequest`s off the event loop (see the module docstring).

    Args:
        rules: what a request may hold.
        workers: processes that read large bodies.
        memory_limit_mb: address-space limit of each of them.
    """

    def __init__(self, rules: RequestRules, workers: int, memory_limit_mb: int) -> None:
        self.rules = rules
        self.pool = DeadlinePool(workers, preload=[__name__], memory_limit_mb=memory_limit_mb)

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    @property
    def ready(self) -> bool:
        return self.pool.alive

    async def read(self, body: bytes) -> GradeRequest:
        """The validated request; raises BadRequest (4xx, naming the field) otherwise."""
        return await self.read_as(read_grade_request, body)

    async def read_as(self, reader: BodyParser[T], body: bytes) -> T:
        """`reader(body, self.rules)` in a thread (small bodies) or a worker process; raises the BadRequest
        it returns. `reader` must be importable (a module-level function) and never raise: like
        `read_grade_request`, it returns its BadRequest (4xx, naming the field)."""
        if len(body) <= INLINE_MAX_BYTES:
            result = await asyncio.to_thread(reader, body, self.rules)
        else:
            try:
                result = await self.pool.run(
                    read_in_worker, reader, body, self.rules, timeout_s=PARSE_TIMEOUT_S
                )
            except JobTimeout:
                raise BodyTooLarge(
                    f"the body could not be read within {PARSE_TIMEOUT_S:g} s",
                    [{"loc": ["body"], "msg": "too complex"}],
                ) from None
            except JobFailed:
                log.exception("reading a request body failed")
                raise
            except WorkerCrashed:  # the reader died: the kernel's OOM killer, most likely, for this body
                log.warning("a request body's reader died; the body is refused (413)")
                raise BodyTooLarge(
                    "the body could not be read within this server's memory",
                    [{"loc": ["body"], "msg": "too complex"}],
                ) from None
        if isinstance(result, BadRequest):
            raise result
        return result


def body_rules(backends: Mapping[str, Any], max_groups: int, max_completions: int) -> RequestRules:
    """The rules for the given backends (each one's `reference_model` and optional `reference_context`)."""
    references = {
        name: (backend.reference_model, getattr(backend, "reference_context", None))
        for name, backend in backends.items()
    }
    return RequestRules(max_groups, max_completions, references)
