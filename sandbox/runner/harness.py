"""G, the test process: the harness around the solution. Standard library only.

Everything here runs in the test process once it has dropped its privileges, next to the solution. Its
frames are filtered out of the solution's tracebacks by this file's name (see _print_exception), so the
harness lives whole in this one module: session.Session._child sets the process up and calls
`probe_compile` or `run_solution`, nothing else.
"""

from __future__ import annotations

import atexit
import builtins
import json
import marshal
import math
import os
import struct
import sys
import traceback
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def probe_compile(code: str) -> int:
    """Compile the solution; send the code object back (record b"C") so that the session never compiles it."""
    try:
        compiled = compile(code, "<solution>", "exec", dont_inherit=True)
        _record(b"C", marshal.dumps(compiled))
    except BaseException:  # noqa: BLE001 - SyntaxError, MemoryError, RecursionError, ValueError (NUL bytes)
        _print_exception(sys.stderr)
        return 1
    return 0


# The harness binds what it uses as default arguments: a solution that patches builtins or the json, sys,
# os or traceback modules in its own process does not change how its result is reported. (It could still
# report anything it likes by writing to fd 3 itself: but expected outputs never enter the sandbox, so
# forging a result is no easier than returning it, and the comparison happens outside.)


def _print_exception(
    stream: Any,
    _exc_info: Any = sys.exc_info,
    _format: Any = traceback.format_exception,
    _here: str = __file__,
    _join: Any = "".join,
) -> None:
    """The traceback of the exception being handled, without the harness's own frames."""
    try:
        exc_type, exc, tb = _exc_info()
        while tb is not None and tb.tb_frame.f_code.co_filename == _here:
            tb = tb.tb_next
        stream.write(_join(_format(exc_type, exc, tb)))
        stream.flush()
    except BaseException:  # noqa: BLE001, S110
        pass


def _exit_code(exc: SystemExit, _isinstance: Any = isinstance, _int: Any = int) -> int:
    """The exit status python gives an uncaught SystemExit.

    As CPython has it: any int (a bool too: exit(False) is 0) as a C long, whose low byte is the status;
    one that does not fit in a C long is -1, so 255 (`raise SystemExit(2**100)` is no clean exit).
    """
    code = exc.code
    if code is None:
        return 0
    if _isinstance(code, _int):
        value = _int.__index__(code)  # (never the subclass's own methods)
        return value & 0xFF if -(1 << 63) <= value < 1 << 63 else 255
    try:
        sys.stderr.write(f"{code}\n")
    except BaseException:  # noqa: BLE001, S110
        pass
    return 1


def _record(
    tag: bytes, body: bytes, _write: Any = os.write, _pack: Any = struct.pack, _memoryview: Any = memoryview
) -> None:
    """One record (tag, length, body) on the result channel, fd 3."""
    view = _memoryview(tag + _pack(">I", len(body)) + body)
    while view:
        view = view[_write(3, view) :]


def _find_function(
    namespace: dict[str, Any],
    name: str,
    _callable: Any = callable,
    _isinstance: Any = isinstance,
    _type: Any = type,
    _hasattr: Any = hasattr,
    _getattr: Any = getattr,
    _NameError: Any = NameError,
) -> Any:
    """`name` at module level, else as a method of an instance of `class Solution` (LeetCode style)."""
    function = namespace.get(name)
    if _callable(function) and not _isinstance(function, _type):
        return function
    cls: Any = namespace.get("Solution")
    if _isinstance(cls, _type) and _hasattr(cls, name):
        return _getattr(cls(), name)
    raise _NameError(f"no function {name!r} at module level or in class Solution")


def _make_json_encoder(
    _isinstance: Any = isinstance,
    _type: Any = type,
    _getattr: Any = getattr,
    _int_repr: Any = int.__repr__,
    _float_repr: Any = float.__repr__,
    _isfinite: Any = math.isfinite,
    _escape: Any = json.encoder.encode_basestring,
    _join: Any = ",".join,
    _list_iter: Any = list.__iter__,
    _tuple_iter: Any = tuple.__iter__,
    _items: Any = dict.items,
    _TypeError: Any = TypeError,
    _ValueError: Any = ValueError,
) -> Any:
    """A JSON encoder built from the values themselves, never from their (overridable) methods."""

    def number(item: Any) -> str | None:
        if _isinstance(item, bool):
            return "true" if item else "false"
        if _isinstance(item, int):
            return str(_int_repr(item))
        if _isinstance(item, float):
            if not _isfinite(item):
                raise _ValueError(f"the result holds a non-finite float {_float_repr(item)}")
            return str(_float_repr(item))
        return None

    def key(item: Any) -> str:
        if _isinstance(item, str):
            return str(_escape(item))
        if item is None:
            return '"null"'
        text = number(item)
        if text is None:
            raise _TypeError(f"a dict key of type {_type(item).__name__} is not JSON")
        return '"' + text + '"'

    def encode(item: Any) -> str:
        if item is None:
            return "null"
        if _isinstance(item, str):
            return str(_escape(item))
        text = number(item)
        if text is not None:
            return text
        if _isinstance(item, list):
            return "[" + str(_join([encode(x) for x in _list_iter(item)])) + "]"
        if _isinstance(item, tuple):
            return "[" + str(_join([encode(x) for x in _tuple_iter(item)])) + "]"
        if _isinstance(item, dict):
            return "{" + str(_join([key(k) + ":" + encode(v) for k, v in _items(item)])) + "}"
        kind = _type(item)
        if _getattr(kind, "__module__", "") == "numpy" and _getattr(item, "tolist", None) is not None:
            return encode(item.tolist())  # numpy scalars and arrays
        raise _TypeError(
            f"the result of type {kind.__name__} is not JSON (None, bool, int, float, str, list, tuple, dict)"
        )

    return encode


to_json = _make_json_encoder()
to_json.__doc__ = """The return value as JSON text, tuples as lists.

Only None, bool, int, float, str, list, tuple and dict (keys str, int, float, bool or None, turned into
strings as json.dumps does) qualify; a subclass counts as its base type, so an overridden __eq__, __iter__
or __str__ changes nothing; numpy scalars and arrays become their Python values. Anything else raises
TypeError (the test is then a runtime_error), as does a non-finite float or a cycle (RecursionError).
"""


def run_solution(
    code: types.CodeType,
    mode: str,
    fn_name: str | None,
    args: list[Any] | None,
    _record: Any = _record,
    _to_json: Any = to_json,
    _find_function: Any = _find_function,
    _print_exception: Any = _print_exception,
    _exit_code: Any = _exit_code,
    _exec: Any = exec,
    _type: Any = type,
    _modules: Any = sys.modules,
    _run_exitfuncs: Any = atexit._run_exitfuncs,
    _SystemExit: Any = SystemExit,
    _BaseException: Any = BaseException,
) -> int:
    """Run the solution as `python solution.py` would; return its exit status. Inside G only."""
    stdout = sys.stdout
    stderr = sys.stderr
    ballast = bytearray(1 << 14)  # freed on an exception, so that a MemoryError can still be reported
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    module.__dict__["__file__"] = "solution.py"
    _modules["__main__"] = module
    status = 0
    try:
        _exec(code, module.__dict__)
        if mode == "call":
            function = _find_function(module.__dict__, fn_name or "")
            value = function(*(args or []))
            _record(b"R", _to_json(value).encode("utf-8", "surrogatepass"))
        threading = _modules.get("threading")
        if threading is not None:
            threading._shutdown()  # wait for non-daemon threads, as python does at exit
    except _SystemExit as exc:
        status = _exit_code(exc)
    except _BaseException as exc:  # noqa: BLE001 - the program's own failure
        del ballast
        try:
            _record(b"E", _type(exc).__name__.encode("utf-8", "replace"))
        except _BaseException:  # noqa: BLE001, S110
            pass
        _print_exception(stderr)
        status = 1
    try:
        _run_exitfuncs()
    except _BaseException:  # noqa: BLE001, S110
        pass
    for stream in (sys.stdout, stdout):
        try:
            stream.flush()
        except _BaseException:  # noqa: BLE001
            status = status or 120  # what python does when stdout cannot be flushed at exit
    try:
        sys.stderr.flush()
    except _BaseException:  # noqa: BLE001, S110
        pass
    return int(status)
