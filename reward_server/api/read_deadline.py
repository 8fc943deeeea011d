"""A deadline on receiving each HTTP request, which uvicorn does not have.

uvicorn's only timer is the keep-alive one, armed after a response. A client that connects and sends
nothing, or half its headers, or a body shorter than its Content-Length, holds its connection (and, for a
short body, a request task) forever. No ASGI middleware can help with the headers: the app is only called
once they are complete. So this subclass of uvicorn's httptools protocol arms a deadline whenever the
server waits for a request (on connection, and at the first byte of each request) and cancels it once the
request is complete, headers and body; grading time never counts. When it fires: a 408 with the project's
JSON error body if no response has started, and the connection is closed.

Use: `uvicorn.run(app, http=read_deadline_protocol(60.0))`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def read_deadline_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, with a deadline of `timeout_s` on receiving each whole request."""
    body = json.dumps(
        {
            "error": "request_timeout",
            "message": f"the request did not arrive within {timeout_s:g} s (REWARD_READ_TIMEOUT_S)",
            "fields": [{"loc": ["body"], "msg": "incomplete request"}],
        }
    ).encode()
    timed_out = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        + body
    )

    class ReadDeadlineProtocol(HttpToolsProtocol):
        _read_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._read_deadline = self.loop.call_later(timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None

        def _expired(self) -> None:
            self._read_deadline = None
            if self.transport.is_closing():
                return
            cycle: Any = self.cycle  # the request being answered, or the last one (answered), or None
            answering = cycle is not None and not cycle.response_complete
            if not (answering and cycle.response_started):  # else: already answering (a 413): just close
                if answering:
                    cycle.disconnected = True  # the app, waiting for the rest of the body, sends nothing
                self.logger.info("request not received within %g s: 408, connection closed", timeout_s)
                self.transport.write(timed_out)
            self.transport.close()

    return ReadDeadlineProtocol
