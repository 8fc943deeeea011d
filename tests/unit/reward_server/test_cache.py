"""Result cache: stable keys, LRU eviction, and the Redis cache against a real redis-server."""

from __future__ import annotations

import os

import pytest

from reward_server.cache import MemoryCache, RedisCache, cache_key


def test_key_depends_on_every_part() -> None:
    base = cache_key("math", "0.1.0", '{"answer":"1"}', "text")
    assert base == cache_key("math", "0.1.0", '{"answer":"1"}', "text")
    assert base != cache_key("math", "0.1.1", '{"answer":"1"}', "text")
    assert base != cache_key("math", "0.1.0", '{"answer":"2"}', "text")
    assert base != cache_key("math", "0.1.0", '{"answer":"1"}', "text ")
    assert cache_key("a", "bc") != cache_key("ab", "c")


def test_key_survives_lone_surrogates() -> None:
    assert cache_key("math", "\ud800 junk \udfff")


async def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(2)
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.get_many(["a"]) == [1]
    await cache.set_many({"c": 3})
    assert await cache.get_many(["a", "b", "c"]) == [1, None, 3]


@pytest.mark.redis
async def test_redis_cache_round_trip() -> None:
    url = os.environ.get("REWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    cache = RedisCache(url, ttl_s=60)
    assert await cache.ping(), f"no redis-server at {url}"
    key = cache_key("test", os.urandom(8).hex())
    await cache.set_many({key: {"status": "correct", "answer": "1/2"}})
    assert await cache.get_many([key, key + "x"]) == [{"status": "correct", "answer": "1/2"}, None]
    await cache.close()


async def test_unreachable_redis_degrades_to_misses() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", ttl_s=60)
    assert await cache.ping() is False
    assert await cache.get_many(["k"]) == [None]
    await cache.set_many({"k": 1})
    assert cache.errors == 2
    await cache.close()
