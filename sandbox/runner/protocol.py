"""The runner's wire protocol: frames on its stdin/stdout, and the messages they carry.

The host imports this module alone (`sandbox.runners.session` speaks it); inside the sandbox the zygote and
the session processes use it. Standard library only.

Protocol (stdin/stdout of the runner; one request, then one reply, never two requests in flight)
-------------------------------------------------------------------------------------------------
Every message is a frame: a 4-byte big-endian length N, then N bytes of UTF-8 JSON holding one object with
an "op" key. Frames larger than 256 MiB are refused. Requests and replies:

    -> {"op": "hello", "version": 1, "config": {...}}     first frame; config keys below, all optional
    <- {"op": "ready", "version": 1, "isolation": {...}, "summary": "..."}
    <- {"op": "error", "message": "..."}                   isolation could not be set up (then exit 1)

    -> {"op": "open", "program": {"code", "mode", "fn_name"}, "limits": {Limits fields}}
    <- {"op": "opened", "compile_error": null | "SyntaxError ..."}
    -> {"op": "run", "stdin": "...", "args": null | [...]}     any number of times
    <- {"op": "result", "outcome", "stdout", "stderr_tail", "result_json", "exit_code", "signal",
        "wall_time_s", "cpu_time_s", "certain"}
    -> {"op": "close"}
    <- {"op": "closed"}                                    the session and everything it started are gone

    -> {"op": "ping"}   <- {"op": "pong"}                  only between sessions

Any request may instead be answered by {"op": "error", "message": ...}: an infrastructure failure (never a
verdict on the program); the caller should then discard the runner. Closing the runner's stdin ends it.

Config ("hello"; read by isolation.Config): "namespaces": "auto" | "require" | "off"; "runner_uid"/"test_uid"
(host uids used when the runner starts as real root: the user namespace maps its root to runner_uid and the
test user, uid 1000 inside, to test_uid; without a user namespace tests run as test_uid directly);
"workdir_mb" (size of the per-session tmpfs); "expose" (host paths to show read-only besides the Python
installation, DEFAULT_EXPOSE by default); "work_root" (where per-session work dirs go when there is no mount
namespace); "spare_session" (default true: with a pid namespace, set up the next session process ahead of
its "open", see zygote); "mount_proc": "auto" | "off" (see "/proc" in the package docstring); "cgroup" (the
cgroup of the tests: see cgroup.TestCgroup); "levels" (tests only: the isolation levels to try, among
userns, userns-unprivileged, namespaces and none).

Limits ("open"; read by session.Limits): wall_time_s, cpu_time_s, memory_mb, max_processes,
max_output_bytes, max_open_files, max_file_bytes.
"""

from __future__ import annotations

import json
import os
import struct

# mypy treats TYPE_CHECKING as true; at run time typing stays out of every test process (see __init__).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .isolation import Isolation

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 << 20
# A session answers "close" within this (it kills and reaps what its tests left); the host waits a bit more.
SWEEP_TIMEOUT_S = 5.0
# The host paths a sandbox shows read-only by default (config "expose"), besides the Python installation.
DEFAULT_EXPOSE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def read_exact(fd: int, size: int) -> bytes | None:
    """`size` bytes from fd; None on end of file before the first byte."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        data = os.read(fd, size - got)
        if not data:
            if got == 0:
                return None
            raise EOFError("truncated frame")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if len(body) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return struct.pack(">I", len(body)) + body


def decode_frame_body(body: bytes) -> dict[str, Any]:
    message = json.loads(body.decode("utf-8", "surrogatepass"))
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ValueError("a frame must hold a JSON object with an 'op'")
    return message


def read_frame(fd: int) -> dict[str, Any] | None:
    header = read_exact(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    body = read_exact(fd, size) if size else b""
    if body is None:
        raise EOFError("truncated frame")
    return decode_frame_body(body)


def write_frame(fd: int, message: dict[str, Any]) -> None:
    write_all(fd, encode_frame(message))


def ready_message(iso: Isolation) -> dict[str, Any]:
    return {"op": "ready", "version": PROTOCOL_VERSION, "isolation": iso.as_dict(), "summary": iso.summary()}


def answer_idle(iso: Isolation, message: dict[str, Any], wfd: int = 1) -> None:
    """Answer a request outside a session (in the zygote, or in a spare session process)."""
    op = message["op"]
    if op == "ping":
        write_frame(wfd, {"op": "pong"})
    elif op == "hello":
        write_frame(wfd, ready_message(iso))
    else:
        write_frame(wfd, {"op": "error", "message": f"unexpected op {op!r} outside a session"})
