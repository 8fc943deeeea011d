"""What the benchmarks share: starting a reward server process and describing the machine."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`reward-server serve` on a free port; returns the process and its URL once /readyz answers 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "reward_server", "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("reward-server did not become ready")


def machine_info() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
