"""The Redis result cache: verdicts survive a server restart and are shared by every server process."""

from __future__ import annotations

import os
import re
import uuid

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_second_server_answers_a_retry_from_redis() -> None:
    url = os.environ.get("REWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    nonce = uuid.uuid4().hex
    body = {
        "request_id": nonce,
        "groups": [
            {
                "group_id": "g",
                "backend": "math",
                "reference": {"answer": "2\\sqrt{2}"},
                "completions": [
                    f"{nonce} $\\boxed{{\\sqrt{{8}}}}$",
                    f"{nonce} $\\boxed{{3}}$",
                    f"{nonce} $\\boxed{{4}}$",
                ],
            }
        ],
    }
    env = {"REWARD_REDIS_URL": url, "REWARD_MATH_WORKERS": "1"}
    first_server = ServerProcess(env)
    try:
        assert httpx.get(first_server.url + "/readyz").json()["checks"]["cache"] is True
        first = httpx.post(first_server.url + "/v1/grade", json=body, timeout=60).json()
    finally:
        first_server.stop()
    second_server = ServerProcess(env)
    try:
        second = httpx.post(second_server.url + "/v1/grade", json=body, timeout=60).json()
        metrics = httpx.get(second_server.url + "/metrics").text
    finally:
        second_server.stop()
    assert second == first
    assert [r["status"] for r in first["groups"][0]["results"]] == ["correct", "incorrect", "incorrect"]
    hits = re.search(r'reward_cache_lookups_total\{outcome="hit"\} ([0-9.]+)', metrics)
    misses = re.search(r'reward_cache_lookups_total\{outcome="miss"\} ([0-9.]+)', metrics)
    assert hits and float(hits.group(1)) == 3
    assert misses is None or float(misses.group(1)) == 0
