"""Connections to a real `reward-server serve` over raw sockets: a request that never completes is cut.

Each client below holds a connection open without finishing its request: connects and sends nothing,
sends half its headers, or a body shorter than its Content-Length. Without a read deadline the server held
each of them forever (uvicorn only times out idle keep-alive connections after a response).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

READ_TIMEOUT_S = 1.0
WAIT_S = 10.0  # far past the deadline; a server without one answers nothing in that time


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(
        {"REWARD_MATH_WORKERS": "1", "REWARD_READ_TIMEOUT_S": str(READ_TIMEOUT_S), "SANDBOX_SLOTS": "1"}
    )
    yield process
    process.stop()


def held(server: ServerProcess, sent: bytes) -> tuple[bytes, float]:
    """Send `sent` and wait: what the server answers before closing, and how long it took."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the server still held the connection after {WAIT_S} s (got {received[:200]!r})")
        return received, time.monotonic() - started


PARTIAL = {
    "nothing": b"",
    "half_the_headers": b"POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
    "a_short_body": (
        b"POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"groups": ['
    ),
}


@pytest.mark.parametrize("name", list(PARTIAL))
def test_an_incomplete_request_gets_a_408_and_the_connection_closed(server: ServerProcess, name: str) -> None:
    received, waited = held(server, PARTIAL[name])
    assert waited < READ_TIMEOUT_S + 3, waited
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", received[:300]
    error = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert error["error"] == "request_timeout" and error["fields"] == [
        {"loc": ["body"], "msg": "incomplete request"}
    ]
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_slow_but_complete_request_and_a_long_grading_are_not_cut(server: ServerProcess) -> None:
    group = {
        "group_id": "slow",
        "backend": "code",
        "reference": {"tests": [{"input": "", "output": "1\n"}], "time_limit_s": 5},
        "completions": ["```python\nimport time\ntime.sleep(2 * " + str(READ_TIMEOUT_S) + ")\nprint(1)\n```"],
    }
    body = json.dumps({"groups": [group]}).encode()
    head = b"POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as sock:
        sock.sendall(head)
        time.sleep(READ_TIMEOUT_S / 2)
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(READ_TIMEOUT_S / 3)
        sock.sendall(body[10:])
        received = b""
        while b"\r\n\r\n" not in received or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK"), received[:300]
    (result,) = json.loads(received.partition(b"\r\n\r\n")[2])["groups"][0]["results"]
    assert result["status"] == "correct", result  # it slept past the read deadline while it was graded
