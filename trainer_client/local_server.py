"""A `reward-server serve` child process for one experiment: a free port, ready before use, stopped after.

    with local_reward_server() as url:   # e.g. http://127.0.0.1:53211
        train(config_with(url))

Needs the server extra (`pip install 'inference-aware-verifier[server]'`) in the same Python; without it,
pass the URL of a running server instead. The child gets none of the caller's `REWARD_*` variables (so no
API keys: it listens on 127.0.0.1 only), only those given in `env`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from trainer_client.errors import LocalServerError

__all__ = ["local_reward_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_reward_server(env: Mapping[str, str] | None = None, ready_timeout_s: float = 120) -> Iterator[str]:
    """Start `python -m reward_server serve` on a free local port; yield its URL once /readyz answers 200.

    The process is terminated (then killed after 15 s) on exit, an exception included.

    Raises:
        LocalServerError: the server exited early or was not ready within `ready_timeout_s`.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("REWARD_")}
    command = [sys.executable, "-m", "reward_server", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], env={**clean, **(env or {})})
    try:
        _wait_ready(url, process, ready_timeout_s)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    # /readyz rather than /healthz: it also waits for the math worker processes.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"reward-server exited with status {process.returncode} before it was ready"
            )
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise LocalServerError(f"reward-server at {url} was not ready within {timeout_s:g} s")
