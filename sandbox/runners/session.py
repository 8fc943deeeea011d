"""A session on one runner, shared by both backends: open a program, run its tests, close.

The backends differ only in how a message reaches the runner (a local pipe, or a container's attached
stream); that is the `RunnerChannel`.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, Protocol

from pydantic import ValidationError

from sandbox.errors import SandboxCrashed, SandboxError
from sandbox.runner import protocol
from sandbox.schemas import Limits, Program, TestInput, TestRun

# Closing waits for the runner's sweep of everything the program left behind.
CLOSE_TIMEOUT_S = protocol.SWEEP_TIMEOUT_S + 5.0


class RunnerChannel(Protocol):
    broken: bool  # set when the runner answered nonsense: it is replaced, never reused

    @property
    def label(self) -> str:
        """Names the runner in errors: "runner 0", "container 1"."""
        ...

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]: ...


async def exchange(
    channel: RunnerChannel,
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    message: dict[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """Send one frame to a runner and read its reply; any failure breaks the channel (SandboxCrashed)."""
    frame = protocol.encode_frame(message)
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(frame)
            await writer.drain()
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            if size > protocol.MAX_FRAME_BYTES:
                raise ValueError(f"frame of {size} bytes")
            reply = protocol.decode_frame_body(await reader.readexactly(size))
    except TimeoutError as exc:
        channel.broken = True
        raise SandboxCrashed(
            f"{channel.label} did not answer {message['op']!r} in {timeout_s:.1f} s"
        ) from exc
    except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
        channel.broken = True
        raise SandboxCrashed(f"{channel.label} failed during {message['op']!r}: {exc!r}") from exc
    except BaseException:
        channel.broken = True  # cancelled mid-request: the stream is out of step
        raise
    if reply["op"] == "error":
        channel.broken = True
        raise SandboxCrashed(f"{channel.label}: {reply.get('message', 'error')}")
    return reply


class RunnerSession:
    """One program on one runner; run its tests one at a time."""

    def __init__(self, channel: RunnerChannel, program: Program, limits: Limits, margin_s: float) -> None:
        self.channel = channel
        self.program = program
        self.limits = limits
        self._margin_s = margin_s
        self._lock = asyncio.Lock()
        self._closed = False
        self.compile_error: str | None = None

    async def open(self) -> None:
        message = {"op": "open", "program": self.program.model_dump(), "limits": self.limits.model_dump()}
        reply = await self.channel.request(message, self.limits.wall_time_s + self._margin_s)
        self._expect(reply, "opened", "open")
        self.compile_error = reply.get("compile_error")

    async def run(self, test: TestInput) -> TestRun:
        """Run one test under the session's limits. Raises SandboxError only for infrastructure failures."""
        if self._closed:
            raise SandboxError("the session is closed")
        message = {"op": "run", "stdin": test.stdin, "args": test.args}
        json.dumps(message)  # a TypeError here is the caller's (arguments that are not JSON)
        async with self._lock:
            reply = await self.channel.request(message, self.limits.wall_time_s + self._margin_s)
        self._expect(reply, "result", "run")
        try:
            return TestRun(
                outcome=reply["outcome"],
                stdout=reply["stdout"],
                stderr_tail=reply["stderr_tail"],
                result_json=reply["result_json"],
                exit_code=reply["exit_code"],
                signal=reply["signal"],
                wall_time_s=reply["wall_time_s"],
                cpu_time_s=reply.get("cpu_time_s", 0.0),
                certain=reply.get("certain", True),
            )
        except (KeyError, ValidationError) as exc:
            self.channel.broken = True
            raise SandboxCrashed(f"{self.channel.label}: malformed result: {exc}") from exc

    async def close(self) -> None:
        self._closed = True
        if self.channel.broken:
            return
        async with self._lock:
            reply = await self.channel.request({"op": "close"}, CLOSE_TIMEOUT_S)
        self._expect(reply, "closed", "close")

    def _expect(self, reply: dict[str, Any], op: str, request: str) -> None:
        if reply["op"] != op:
            self.channel.broken = True
            raise SandboxCrashed(f"{self.channel.label}: unexpected reply {reply['op']!r} to {request!r}")
