"""Authentication of a real `reward-server serve` over HTTP; its refusal to serve an open port unguarded.

Which requests get a 401, and what it says, is tested in-process in tests/unit/reward_server/test_api_auth.py;
here what needs the process: a large body refused before it is read, the client's key over the wire, `serve`
and `probe`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reward_server.schemas import GradeGroup, Status
from tests.conftest import REPO, ServerProcess, free_port
from trainer_client.client import AsyncRewardClient, RewardClient
from trainer_client.errors import RewardRequestError

pytestmark = pytest.mark.slow

ENV_KEY, SECOND_KEY, FILE_KEY = "env-key-" + "1" * 24, "env-key-" + "2" * 24, "file-key-" + "3" * 24
MATH = {"group_id": "g", "backend": "math", "reference": {"answer": "1"}, "completions": ["$\\boxed{1}$"]}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    keys_file = tmp_path_factory.mktemp("secrets") / "api_keys"
    keys_file.write_text(f"# one key per line\n{FILE_KEY}\n")
    env = {
        "REWARD_MATH_WORKERS": "1",
        "REWARD_API_KEYS": f"{ENV_KEY},{SECOND_KEY}",
        "REWARD_API_KEYS_FILE": str(keys_file),
        "REWARD_HOST": "0.0.0.0",  # keys given: beyond loopback is fine
    }
    process = ServerProcess(env, api_key=ENV_KEY)
    yield process
    process.stop()


def test_a_large_body_without_a_key_is_refused_before_it_is_read(keyed: ServerProcess) -> None:
    started = time.monotonic()
    response = httpx.post(keyed.url + "/v1/grade", content=b" " * (20 * 1024 * 1024), timeout=30)
    assert response.status_code == 401
    assert time.monotonic() - started < 10
    assert httpx.get(keyed.url + "/healthz").status_code == 200


async def test_the_client_sends_its_key(keyed: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    group = GradeGroup.model_validate(MATH)
    async with AsyncRewardClient(keyed.url, api_key=FILE_KEY, timeout_s=60) as client:
        response = await client.grade([group])
    assert response.groups[0].results[0].status is Status.CORRECT
    monkeypatch.setenv("REWARD_SERVER_API_KEY", SECOND_KEY)
    with RewardClient(keyed.url, timeout_s=60) as sync_client:
        assert sync_client.grade([group]).groups[0].results[0].status is Status.CORRECT
    monkeypatch.delenv("REWARD_SERVER_API_KEY")
    async with AsyncRewardClient(keyed.url, timeout_s=60, max_retries=3) as client:
        with pytest.raises(RewardRequestError) as info:
            await client.grade([group])
    assert info.value.status_code == 401 and info.value.error == "unauthorized"


def serve(env: dict[str, str], host: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    command = [sys.executable, "-m", "reward_server", "serve", "--host", host, "--port", str(free_port())]
    return subprocess.Popen(
        command, env={**clean, "REWARD_MATH_WORKERS": "1", **env}, cwd=REPO, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org"])
def test_serve_refuses_an_unguarded_open_port(host: str) -> None:
    process = serve({}, host)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    assert f"refusing to serve on {host}:" in stderr
    assert "REWARD_API_KEYS" in stderr and "REWARD_ALLOW_UNAUTHENTICATED=true" in stderr


def test_serve_on_an_open_port_without_keys_when_the_operator_accepts_it() -> None:
    process = serve({"REWARD_ALLOW_UNAUTHENTICATED": "true"}, "0.0.0.0")
    try:
        assert process.stderr is not None
        started = time.monotonic()
        lines = []
        while time.monotonic() - started < 60:
            line = process.stderr.readline()
            lines.append(line)
            if "WITHOUT AUTHENTICATION" in line or not line:
                break
        assert "WITHOUT AUTHENTICATION" in lines[-1], lines
        assert process.poll() is None  # it serves
    finally:
        process.kill()
        process.communicate()


def test_serve_on_loopback_needs_no_key(tmp_path: Path) -> None:
    process = ServerProcess({"REWARD_MATH_WORKERS": "1"})  # 127.0.0.1, the default
    try:
        assert httpx.get(process.url + "/v1/backends").status_code == 200
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("keys", "ok"),
    [
        ({"REWARD_API_KEYS": SECOND_KEY}, True),
        ({"REWARD_API_KEYS": "wrong-key-" + "0" * 20}, False),
        ({}, False),
    ],
)
def test_probe_checks_readiness_with_the_configured_key(
    keyed: ServerProcess, keys: dict[str, str], ok: bool
) -> None:
    """`reward-server probe`: the compose health check, which reads the key as `serve` does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REWARD_")}
    env = {**clean, "REWARD_HOST": "0.0.0.0", "REWARD_PORT": str(keyed.port), **keys}
    done = subprocess.run(
        [sys.executable, "-m", "reward_server", "probe", "/readyz"], env=env, capture_output=True, text=True
    )
    assert (done.returncode == 0) is ok, done.stderr
    assert ok or "HTTP 401" in done.stderr
    assert SECOND_KEY not in done.stdout + done.stderr
