"""What the benchmarks share: a reward server process, a private Redis, worker processes, the machine."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

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


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of the run's own on a free port (nothing saved); its URL."""
    if shutil.which("redis-server") is None:
        raise SystemExit("this bench needs redis-server (apt-get install redis-server), or a --redis-url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def worker_processes(command: Sequence[str], count: int, env: dict[str, str], url: str) -> Iterator[None]:
    """`count` queue workers (`command`, e.g. `reward-server worker`), once all have registered in Redis."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    processes = [
        subprocess.Popen(list(command), env={**clean, **env, "REWARD_WORKER_NAME": f"bench-{n}"}, cwd=ROOT)
        for n in range(count)
    ]
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 60
        while client.zcard(f"{env['REWARD_QUEUE_PREFIX']}:workers:alive") < count:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not register")
            time.sleep(0.05)
        yield
    finally:
        client.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
