"""Shared fixtures: a clean environment, the shared data folder, and a real reward-server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"  # copied in, with its sources and licences (data/README.md)


def clear_our_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset our settings' variables (`REWARD_*`, `SANDBOX_*`, `TRAINER_*`) until `monkeypatch` undoes it."""
    for name in list(os.environ):
        if name.startswith(("REWARD_", "SANDBOX_", "TRAINER_")) and name != "REWARD_TEST_REDIS_URL":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    clear_our_environ(monkeypatch)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return DATA


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`reward-server serve` in a child process, reached over a real socket.

    `api_key`: the key readiness is polled with, for a server started with REWARD_API_KEYS.
    """

    def __init__(self, env: dict[str, str], api_key: str | None = None) -> None:
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reward_server",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env={**clean, **env},
            cwd=REPO,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"reward-server exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/readyz", headers=self.auth, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("reward-server did not become ready")

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of `api_key` (none without one)."""
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    process = ServerProcess({"REWARD_MATH_WORKERS": "2", "REWARD_MATH_TIMEOUT_S": "3"})
    yield process
    process.stop()
