"""How a finished test is judged: its outcome, and whether that outcome is certainly the program's doing.

Standard library only; runs in the session process S (see session), never next to the solution.

Outcome (see judge): output_limit if S killed it for that; memory if the OOM killer took a process of its
cgroup meanwhile; timeout if the wall clock ran out, or its processes together used their CPU time (SIGXCPU,
or the cgroup's count read while it runs); else a signal or a non-zero exit (memory with a MemoryError seen,
else runtime_error); else, for a call, exactly one well-formed result record (else runtime_error); else ok.
"certain" is false when the outcome may not be the program's doing: out of wall time with CPU time to
spare, an OOM kill in a cgroup shared with other sessions, or a SIGKILL nobody can say the sender of.
"""

from __future__ import annotations

import os
import signal
import struct

from .linux import describe_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STDERR_TAIL_BYTES = 1024


def judge(
    status: int,
    cpu_s: float,
    oom_kills: int | None,
    killed: str | None,
    wall_s: float,
    out: bytearray,
    err: bytearray,
    res: bytes,
    ok: bytes,
    *,
    probe: bool,
    expect_result: bool,
    cpu_time_s: float,
    cgroup_shared: bool | None,
) -> dict[str, Any]:
    """Judge what the test did (a "result" frame's fields; for the compile probe also "compiled").

    Args:
        status: the test process's wait status; cpu_s, wall_s: the time it used.
        oom_kills: how many OOM kills its cgroup counted meanwhile (None: unknown).
        killed: "timeout" or "output_limit" when the session killed it, else None.
        out, err: its stdout and stderr; res: its result channel; ok: b"k" once it was set up.
        probe: the compile probe (see harness.probe_compile); expect_result: a call (one result record).
        cpu_time_s: the test's CPU limit; cgroup_shared: whether its cgroup holds other sessions' tests
            (None: no cgroup).

    Raises:
        RuntimeError: the test process died before the solution ran (our failure, not the program's).
    """
    code = os.waitstatus_to_exitcode(status)
    exit_code = code if code >= 0 else None
    sig = -code if code < 0 else None
    stderr_tail = bytes(err[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace")
    records = parse_records(res)
    result_json: str | None = None
    exception = ""
    compiled: bytes | None = None
    if records is not None:
        results = [body for tag, body in records if tag == b"R"]
        exceptions = [body for tag, body in records if tag == b"E"]
        if len(results) == 1:
            result_json = _text(results[0])
        if exceptions:
            exception = exceptions[-1].decode("utf-8", "replace")
        if probe:
            compiled = next((body for tag, body in records if tag == b"C"), None)
    if killed is None and ok != b"k":
        # The harness died before the solution could run: that is our failure, not the program's.
        raise RuntimeError(f"test process setup failed ({describe_exit(code)}): {stderr_tail.strip()}")
    memory_hint = exception == "MemoryError" or any(
        marker in stderr_tail for marker in ("MemoryError", "Cannot allocate memory", "out of memory")
    )
    failed = sig is not None or exit_code != 0
    certain = True
    if killed == "output_limit":
        outcome = killed
    elif oom_kills and (failed or killed is not None):
        outcome = "memory"  # the OOM killer took a process of the test's cgroup
        certain = cgroup_shared is False
    elif killed == "timeout":
        outcome = "timeout"
        # Out of wall time with CPU time to spare: sleeping, blocked, or starved by others' load.
        certain = cpu_s >= cpu_time_s
    elif sig == signal.SIGXCPU or cpu_s >= cpu_time_s:
        outcome = "timeout"  # the time limit is on CPU time, of all its processes together
    elif failed:
        outcome = "memory" if memory_hint else "runtime_error"
        if sig == signal.SIGKILL and not memory_hint and oom_kills is None:
            certain = False  # a kill we did not send, and no way to tell whether the OOM killer sent it
    elif expect_result and result_json is None:
        # Exited without returning (os._exit, sys.exit), or a forged result channel.
        outcome = "runtime_error"
    else:
        outcome = "ok"
    return {
        "outcome": outcome,
        "stdout": bytes(out).decode("utf-8", "replace"),
        "stderr_tail": stderr_tail,
        "result_json": result_json if outcome == "ok" and expect_result else None,
        "exit_code": exit_code,
        "signal": sig,
        "wall_time_s": round(wall_s, 6),
        "cpu_time_s": round(cpu_s, 6),
        "certain": certain,
        **({"compiled": compiled} if probe else {}),
    }


def _text(body: bytes) -> str | None:
    """A result record's JSON text; None if it is not UTF-8 (lone surrogates allowed, as the harness
    writes them). The channel is the test's to write: bytes of its own are no result, never our failure."""
    try:
        return body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def static_result(outcome: str, stderr: str, exit_code: int | None = None) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "stdout": "",
        "stderr_tail": stderr[-STDERR_TAIL_BYTES:],
        "result_json": None,
        "exit_code": exit_code,
        "signal": None,
        "wall_time_s": 0.0,
        "cpu_time_s": 0.0,
        "certain": True,
    }


def parse_records(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The result channel: records of tag (1 byte: b"R" result, b"E" exception name, b"C" compiled code),
    length (4 bytes), body. None if malformed."""
    records: list[tuple[bytes, bytes]] = []
    at = 0
    while at < len(data):
        if at + 5 > len(data):
            return None
        tag = data[at : at + 1]
        (size,) = struct.unpack(">I", data[at + 1 : at + 5])
        if tag not in (b"R", b"E", b"C") or at + 5 + size > len(data):
            return None
        records.append((tag, data[at + 5 : at + 5 + size]))
        at += 5 + size
    return records
