"""What goes into the sandbox and what comes out (pydantic only).

Expected outputs never enter the sandbox: a test here is only its input, and the caller compares what the
program printed or returned. So a solution can neither read the expected answers nor fake a comparison.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The bounds of one test's limits, here and nowhere else: the server's settings and the references of a
# request are checked against them (reward_server.settings, reward_server.code_grading.reference).
MAX_TIME_LIMIT_S = 120.0  # a test's time limit (CPU time); its wall clock may be a multiple of it
MAX_WALL_TIME_S = 3600.0
MIN_MEMORY_MB, MAX_MEMORY_MB = 16, 16384
# A test's result frame (at most 256 MiB: sandbox/runner/protocol.py) carries its output and a call's result
# (each up to max_output_bytes) as JSON text, where a control byte takes 6 bytes (\u0001): past 16 MiB a
# test could make its frame too large to send, an infrastructure error of its own making.
MAX_OUTPUT_BYTES = 16 * 1024 * 1024


class Program(BaseModel):
    """Untrusted Python source and how to call it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(..., description="Python source of the solution.")
    mode: Literal["stdin", "call"] = Field("stdin", description="stdin/stdout program or a call.")
    fn_name: str | None = Field(
        None, description="For `call`: a module-level function, or a method of `class Solution`."
    )


class Limits(BaseModel):
    """Per-test limits. Units are in the names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_time_s: float = Field(
        4.0,
        gt=0,
        le=MAX_WALL_TIME_S,
        description="Wall-clock deadline of one test: every process is killed at it.",
    )
    cpu_time_s: float | None = Field(
        None,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description="The time limit: CPU time of all the test's processes together (each one also under "
        "RLIMIT_CPU); default: the wall time.",
    )
    memory_mb: int = Field(
        512,
        ge=MIN_MEMORY_MB,
        le=MAX_MEMORY_MB,
        description="Address space per process (RLIMIT_AS); with a memory cgroup, also the memory of all "
        "the test's processes together (plus the session's /tmp).",
    )
    max_processes: int = Field(16, ge=1, le=1024, description="Processes/threads the test may run at once.")
    max_output_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=MAX_OUTPUT_BYTES, description="stdout + stderr kept per test."
    )
    max_open_files: int = Field(64, ge=8, le=4096, description="RLIMIT_NOFILE.")
    max_file_bytes: int = Field(16 * 1024 * 1024, ge=0, description="Largest file the program may write.")


class TestInput(BaseModel):
    """One test as the sandbox sees it: stdin text, or the JSON list of positional arguments of the call."""

    __test__ = False
    model_config = ConfigDict(extra="forbid", frozen=True)

    stdin: str = ""
    args: list[Any] | None = Field(None, description="For `call` programs: positional arguments.")


class Outcome(StrEnum):
    OK = "ok"  # ended normally (exit status 0) within the limits
    TIMEOUT = "timeout"  # wall or CPU time limit
    MEMORY = "memory"  # address-space limit (MemoryError or allocation failure)
    RUNTIME_ERROR = "runtime_error"  # non-zero exit, uncaught exception, signal, or no call result
    OUTPUT_LIMIT = "output_limit"  # printed more than max_output_bytes


class TestRun(BaseModel):
    """What one test did. `stdout` for stdin programs; `result_json` for call programs."""

    __test__ = False

    outcome: Outcome
    stdout: str = ""
    stderr_tail: str = Field("", description="The last KiB of stderr, for humans.")
    result_json: str | None = Field(None, description="The call's return value as JSON (tuples as lists).")
    exit_code: int | None = None
    signal: int | None = None
    wall_time_s: float = 0.0
    cpu_time_s: float = Field(0.0, description="CPU time of every process of the test together.")
    certain: bool = Field(
        True,
        description="False when something outside the program may have caused this outcome: out of wall "
        "time with CPU time to spare (sleeping, or starved by a neighbour's load), or a kill whose sender "
        "is unknown (an OOM kill in a cgroup shared with other programs). Such a verdict is not cached.",
    )
