"""A Redis that runs out of memory (maxmemory, noeviction) with real processes: redis-server, `reward-server
serve` and a `reward-server worker`. The result cache filling it must not turn verdicts into `error`, and a
full queue Redis is a refusal with Retry-After (nothing graded, nothing lost), never `error` verdicts with
HTTP 200.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration.test_queue import ADD, WRONG, RedisServer, Stack, fenced, statuses

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOEVICTION = ("--maxmemory-policy", "noeviction")


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def limit_memory(server: RedisServer, headroom_mb: float) -> int:
    """Set maxmemory to what the server uses now plus `headroom_mb`; returns the limit."""
    client = server.client()
    limit = used_memory(client) + int(headroom_mb * 1024 * 1024)
    client.config_set("maxmemory", limit)
    return limit


def math_body(count: int) -> dict[str, object]:
    """`count` new completions (each a new cache entry), all graded `correct` by one sympy judgement."""
    nonce = uuid.uuid4().hex
    return {
        "groups": [
            {
                "group_id": "fill",
                "backend": "math",
                "reference": {"answer": "4"},
                "completions": [f"{nonce} {i}: so the answer is $\\boxed{{4}}$" for i in range(count)],
            }
        ]
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, RedisServer(tmp_path, *NOEVICTION))
    yield stack
    stack.close()


def test_a_cache_that_fills_a_shared_noeviction_redis_does_not_turn_code_into_error(stack: Stack) -> None:
    """One Redis for the queue and the cache (the one-Redis default), `noeviction`, 4 MiB of room: the cache
    fills it with verdicts. Code and math are still graded right afterwards (the queue keeps room to work)."""
    limit = limit_memory(stack.redis, 4)
    server = stack.start_server()
    stack.start_worker("w1")
    client = stack.redis.client()
    before = -1
    for _ in range(40):  # until Redis is full, or the cache stops writing
        response = httpx.post(server.url + "/v1/grade", json=math_body(1500), timeout=120)
        assert statuses(response) == ["correct"] * 1500
        used = used_memory(client)
        if used >= limit or used - before < 64 * 1024:
            break
        before = used
    else:
        raise AssertionError("the cache never filled the Redis")
    assert used > 0.7 * limit, "the cache stopped writing long before Redis was nearly full"
    code = stack.grade([fenced(ADD), fenced(WRONG), fenced(f"# other\n{ADD}")], timeout=120)
    assert statuses(code) == ["correct", "incorrect", "correct"], code.text
    math = httpx.post(server.url + "/v1/grade", json=math_body(3), timeout=60)
    assert statuses(math) == ["correct"] * 3


def test_a_full_queue_redis_refuses_with_retry_after_and_loses_nothing(stack: Stack) -> None:
    """Redis filled by something else until it refuses writes: a code request gets 503 with Retry-After (not
    HTTP 200 with `error` verdicts); once memory is freed, the same request is graded."""
    server = stack.start_server()
    stack.start_worker("w1")
    limit_memory(stack.redis, 1)
    client = stack.redis.client()
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(10_000):
            client.set(f"junk:{i}", "x" * 10_000)
    completions = [fenced(f"# full\n{ADD}"), fenced(f"# full\n{WRONG}")]
    response = stack.grade(completions, timeout=120)
    assert response.status_code in (429, 503), response.text
    assert int(response.headers["retry-after"]) >= 1
    client.config_set("maxmemory", 0)  # room again (an operator raised the limit)
    after = stack.grade(completions, timeout=120)
    assert statuses(after) == ["correct", "incorrect"]
    assert httpx.get(server.url + "/readyz").status_code == 200


def test_the_cache_uses_its_own_redis_when_one_is_configured(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    cache_redis = RedisServer(tmp_path / "cache", "--maxmemory-policy", "allkeys-lru")
    stack = Stack(tmp_path, REWARD_CACHE_REDIS_URL=cache_redis.url)
    try:
        server = stack.start_server()
        response = httpx.post(server.url + "/v1/grade", json=math_body(5), timeout=60)
        assert statuses(response) == ["correct"] * 5
        assert cache_redis.client().keys("rs:v1:*"), "nothing was cached in the cache's Redis"
        assert not stack.redis.client().keys("rs:v1:*"), "the cache wrote to the queue's Redis"
    finally:
        stack.close()
        cache_redis.stop()
