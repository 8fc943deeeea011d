"""What one test did, as the process backend reports it: outcomes, exit status, output, limits."""

from __future__ import annotations

import json

import pytest

from sandbox.runners.process import ProcessSandbox
from sandbox.schemas import Outcome, TestInput
from tests.unit.sandbox.conftest import run_one, run_tests


async def test_stdin_program_round_trip(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "a, b = map(int, input().split())\nprint(a + b)", "2 40\n")
    assert run.outcome is Outcome.OK
    assert run.stdout == "42\n"
    assert run.exit_code == 0 and run.signal is None
    assert 0 < run.wall_time_s < 1


async def test_many_tests_share_one_program(sandbox: ProcessSandbox) -> None:
    tests = [TestInput(stdin=f"{i}\n") for i in range(20)]
    runs = await run_tests(sandbox, "print(int(input()) ** 2)", tests)
    assert [r.stdout for r in runs] == [f"{i * i}\n" for i in range(20)]


async def test_each_test_starts_from_a_fresh_program_state(sandbox: ProcessSandbox) -> None:
    code = "import sys\nseen = getattr(sys, 'seen', 0)\nsys.seen = seen + 1\nprint(sys.seen)"
    runs = await run_tests(sandbox, code, [TestInput(), TestInput(), TestInput()])
    assert [r.stdout for r in runs] == ["1\n", "1\n", "1\n"]


async def test_unicode_and_large_input(sandbox: ProcessSandbox) -> None:
    big = "x" * 3_000_000
    code = "import sys\ndata = sys.stdin.read()\nprint(len(data), data[-3:])"
    run = await run_one(sandbox, code, big + "\u00e9\u4e2d\n")
    assert run.outcome is Outcome.OK
    assert run.stdout == f"{len(big) + 3} \u00e9\u4e2d\n\n"


async def test_stdin_as_bytes_and_open_0(sandbox: ProcessSandbox) -> None:
    code = "import sys\nprint(sys.stdin.buffer.read().split())\nprint(open(0).read() == '')"
    run = await run_one(sandbox, code, "3 4\n")
    assert run.stdout == "[b'3', b'4']\nTrue\n"


async def test_exception_is_a_runtime_error_with_its_traceback(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "x = 1\nprint('partial')\nraise ValueError('boom')")
    assert run.outcome is Outcome.RUNTIME_ERROR
    assert run.exit_code == 1
    assert run.stdout == "partial\n"
    assert 'File "<solution>", line 3' in run.stderr_tail
    assert "raise ValueError('boom')" in run.stderr_tail  # the solution's own line, not the harness's
    assert "runner" not in run.stderr_tail  # (sandbox/runner/harness.py: its frames are left out)


async def test_right_output_then_crash_is_a_runtime_error(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "print(3)\nimport sys\nsys.stdout.flush()\n1 / 0")
    assert run.outcome is Outcome.RUNTIME_ERROR
    assert run.stdout == "3\n"


@pytest.mark.parametrize(
    ("code", "exit_code", "outcome"),
    [
        ("import sys\nsys.exit(0)", 0, Outcome.OK),
        ("import sys\nsys.exit()", 0, Outcome.OK),
        ("exit()", 0, Outcome.OK),
        ("quit(3)", 3, Outcome.RUNTIME_ERROR),
        ("import sys\nsys.exit(7)", 7, Outcome.RUNTIME_ERROR),
        ("import sys\nsys.exit('message')", 1, Outcome.RUNTIME_ERROR),
        # As CPython: bools are ints, and an int past a C long exits with 255 (not its low byte).
        ("import sys\nsys.exit(False)", 0, Outcome.OK),
        ("import sys\nsys.exit(True)", 1, Outcome.RUNTIME_ERROR),
        ("raise SystemExit(256)", 0, Outcome.OK),
        ("raise SystemExit(-1)", 255, Outcome.RUNTIME_ERROR),
        ("raise SystemExit(2**100)", 255, Outcome.RUNTIME_ERROR),
        ("raise SystemExit(2**64)", 255, Outcome.RUNTIME_ERROR),
        (
            "class Code(int):\n    def __index__(self):\n        return 0\nraise SystemExit(Code(3))",
            3,
            Outcome.RUNTIME_ERROR,
        ),
        ("import os\nprint('lost', end='')\nos._exit(0)", 0, Outcome.OK),
        ("import os\nos._exit(4)", 4, Outcome.RUNTIME_ERROR),
    ],
)
async def test_exit_status(sandbox: ProcessSandbox, code: str, exit_code: int, outcome: Outcome) -> None:
    run = await run_one(sandbox, code)
    assert run.exit_code == exit_code
    assert run.outcome is outcome


async def test_a_signal_is_a_runtime_error(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert run.outcome is Outcome.RUNTIME_ERROR
    assert run.signal == 11 and run.exit_code is None


async def test_syntax_error_fails_every_test(sandbox: ProcessSandbox) -> None:
    program_code = "def f(:\n    pass"
    from sandbox.schemas import Limits, Program

    async with sandbox.session(Program(code=program_code), Limits()) as session:
        assert session.compile_error is not None and "SyntaxError" in session.compile_error
        runs = [await session.run(TestInput()) for _ in range(2)]
    assert all(r.outcome is Outcome.RUNTIME_ERROR for r in runs)
    assert "SyntaxError" in runs[1].stderr_tail


async def test_pathological_source_does_not_take_the_sandbox_down(sandbox: ProcessSandbox) -> None:
    for code in ["x = " + "(" * 300 + ")" * 300, "\0", "1" * 2000 + " +"]:
        run = await run_one(sandbox, code)
        assert run.outcome is Outcome.RUNTIME_ERROR
    assert (await run_one(sandbox, "print('still here')")).stdout == "still here\n"


async def test_infinite_loop_is_a_timeout(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "while True:\n    pass", wall_time_s=0.5)
    assert run.outcome is Outcome.TIMEOUT
    assert 0.5 <= run.wall_time_s < 1.5


async def test_sleeping_is_a_timeout_on_the_wall_clock(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "import time\nprint('a', flush=True)\ntime.sleep(60)", wall_time_s=0.5)
    assert run.outcome is Outcome.TIMEOUT
    assert run.stdout == "a\n"  # what it printed before the deadline is kept


async def test_cpu_limit_is_a_timeout(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "while True:\n    pass", wall_time_s=5, cpu_time_s=1)
    assert run.outcome is Outcome.TIMEOUT
    assert run.signal is not None  # SIGXCPU (or SIGKILL at the hard limit)
    assert run.wall_time_s < 4


async def test_memory_error_is_memory(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "x = bytearray(200 * 2**20)", memory_mb=64)
    assert run.outcome is Outcome.MEMORY


async def test_growing_memory_is_memory(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "a = []\nwhile True:\n    a.append(' ' * 2**20)", memory_mb=128)
    assert run.outcome is Outcome.MEMORY


async def test_memory_within_the_limit_is_fine(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "x = bytearray(64 * 2**20)\nprint(len(x))", memory_mb=256)
    assert run.outcome is Outcome.OK


async def test_output_flood_is_output_limit(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "while True:\n    print('x' * 1000)", max_output_bytes=100_000)
    assert run.outcome is Outcome.OUTPUT_LIMIT
    assert len(run.stdout) <= 100_000


async def test_stderr_counts_towards_output_and_its_tail_is_kept(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "import sys\nfor i in range(3000):\n    print(i, file=sys.stderr)")
    assert run.outcome is Outcome.OK
    assert run.stderr_tail.endswith("2998\n2999\n") and len(run.stderr_tail) <= 1024
    flood = await run_one(
        sandbox, "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)", max_output_bytes=50_000
    )
    assert flood.outcome is Outcome.OUTPUT_LIMIT


async def test_open_files_are_limited(sandbox: ProcessSandbox) -> None:
    code = "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\n"
    code += "except OSError:\n    print(len(fs))"
    run = await run_one(sandbox, code, max_open_files=32)
    assert run.outcome is Outcome.OK
    assert int(run.stdout) < 32


async def test_file_size_is_limited(sandbox: ProcessSandbox) -> None:
    code = "f = open('big', 'wb')\nf.write(b'x' * 5000)\nf.flush()"
    run = await run_one(sandbox, code, max_file_bytes=4096)
    assert run.outcome is Outcome.RUNTIME_ERROR
    assert "File too large" in run.stderr_tail


async def test_processes_are_limited(sandbox: ProcessSandbox) -> None:
    code = (
        "import os, time\nn = 0\n"
        "try:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30)\n        n += 1\n"
        "except OSError:\n    print(n)"
    )
    run = await run_one(sandbox, code, max_processes=5, wall_time_s=5)
    assert run.outcome is Outcome.OK
    assert int(run.stdout) <= 4  # the program itself counts as one


async def test_the_work_dir_is_writable_and_private_to_the_session(sandbox: ProcessSandbox) -> None:
    code = (
        "import os\nfirst = not os.path.exists('note')\nopen('note', 'a').write('x')\n"
        "print(first, open('note').read(), os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR'])"
    )
    runs = await run_tests(sandbox, code, [TestInput(), TestInput()])
    assert [r.stdout for r in runs] == ["True x True\n", "False xx True\n"]  # kept between tests of a session
    assert (await run_one(sandbox, code)).stdout == "True x True\n"  # but not between sessions


async def test_environment_is_scrubbed(sandbox: ProcessSandbox) -> None:
    run = await run_one(sandbox, "import os\nprint(sorted(os.environ))")
    assert run.stdout == "['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']\n"


async def test_common_modules_import(sandbox: ProcessSandbox) -> None:
    code = (
        "import sys, math, heapq, bisect, collections, itertools, functools, re, fractions, decimal, random\n"
        "import threading, json, string, array, datetime, typing, copy, operator, statistics\n"
        "sys.setrecursionlimit(10**6)\n"
        "def depth(n): return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(math.gcd(12, 18), depth(50000))"
    )
    run = await run_one(sandbox, code)
    assert run.outcome is Outcome.OK, run.stderr_tail
    assert run.stdout == "6 50000\n"


async def test_threads_that_are_joined_at_exit(sandbox: ProcessSandbox) -> None:
    code = "import threading\nt = threading.Thread(target=lambda: print('from thread'))\nt.start()"
    run = await run_one(sandbox, code)
    assert run.outcome is Outcome.OK
    assert run.stdout == "from thread\n"


# -- call mode --


async def call(box: ProcessSandbox, code: str, fn_name: str, *args: object) -> tuple[Outcome, object]:
    (run,) = await run_tests(box, code, [TestInput(args=list(args))], mode="call", fn_name=fn_name)
    return run.outcome, (json.loads(run.result_json) if run.result_json is not None else None)


async def test_call_module_level_function(sandbox: ProcessSandbox) -> None:
    assert await call(sandbox, "def add(a, b):\n    return a + b", "add", 2, 3) == (Outcome.OK, 5)


async def test_call_solution_method(sandbox: ProcessSandbox) -> None:
    code = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, len(nums) - 1]"
    assert await call(sandbox, code, "twoSum", [1, 2, 3], 4) == (Outcome.OK, [0, 2])


async def test_call_tuples_become_lists(sandbox: ProcessSandbox) -> None:
    code = "def f(x):\n    return (x, (x, [x]), {'k': (1,)})"
    assert await call(sandbox, code, "f", 1) == (Outcome.OK, [1, [1, [1]], {"k": [1]}])


async def test_call_arguments_are_json_values(sandbox: ProcessSandbox) -> None:
    code = "def f(*args):\n    return [type(a).__name__ for a in args]"
    result = await call(sandbox, code, "f", 1, 1.5, "s", None, True, [1], {"a": 1})
    assert result == (Outcome.OK, ["int", "float", "str", "NoneType", "bool", "list", "dict"])


@pytest.mark.parametrize(
    "code",
    [
        "def f():\n    return {1, 2}",
        "def f():\n    return object()",
        "def f():\n    return float('nan')",
        "import os\ndef f():\n    os._exit(0)",
        "import sys\ndef f():\n    sys.exit(0)",
        "def f():\n    raise KeyError(1)",
        "def g():\n    return 1",
    ],
    ids=["set", "object", "nan", "os_exit", "sys_exit", "raises", "missing"],
)
async def test_call_without_a_json_result_is_a_runtime_error(sandbox: ProcessSandbox, code: str) -> None:
    assert await call(sandbox, code, "f") == (Outcome.RUNTIME_ERROR, None)


async def test_call_prints_are_kept_apart_from_the_result(sandbox: ProcessSandbox) -> None:
    code = "def f(x):\n    print('debug', x)\n    return x * 2"
    (run,) = await run_tests(sandbox, code, [TestInput(args=[21])], mode="call", fn_name="f")
    assert run.outcome is Outcome.OK
    assert run.result_json == "42" and run.stdout == "debug 21\n"


async def test_call_without_fn_name_fails_each_test(sandbox: ProcessSandbox) -> None:
    assert await call(sandbox, "def f():\n    return 1", "") == (Outcome.RUNTIME_ERROR, None)
