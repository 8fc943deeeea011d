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


async def test_cache_yields_a_nearly_full_noeviction_redis_to_the_queue() -> None:
    """In a Redis that refuses writes when full (the queue's), the cache stops writing at `max_fill`; in an
    evicting one it keeps writing (eviction makes room)."""
    cache = RedisCache(
        "redis://127.0.0.1:1/0", ttl_s=60, max_fill=0.8
    )  # nothing listens: a write is an error

    async def figures(force: bool = False) -> None:  # instead of INFO memory
        pass

    cache._memory.poll = figures  # type: ignore[method-assign]
    cache._memory.used_bytes, cache._memory.max_bytes, cache._memory.policy = 85, 100, "noeviction"
    await cache.set_many({"a": 1, "b": 2})
    assert (cache.skipped, cache.errors) == (2, 0)
    cache._memory.used_bytes = 50
    await cache.set_many({"a": 1})
    assert (cache.skipped, cache.errors) == (2, 1)  # below the mark: it writes (and fails here)
    cache._memory.used_bytes, cache._memory.policy = 99, "allkeys-lru"
    await cache.set_many({"a": 1})
    assert (cache.skipped, cache.errors) == (2, 2)
    await cache.close()


def test_cache_store_defaults_to_the_queue_redis() -> None:
    from reward_server.cache import build_cache
    from reward_server.settings import RewardSettings

    assert isinstance(build_cache(RewardSettings()), MemoryCache)
    shared = build_cache(RewardSettings(redis_url="redis://queue:6379/0"))  # type: ignore[arg-type]
    own = build_cache(
        RewardSettings(redis_url="redis://queue:6379/0", cache_redis_url="redis://cache:6379/0")  # type: ignore[arg-type]
    )
    assert isinstance(shared, RedisCache) and isinstance(own, RedisCache)
    assert shared._redis.connection_pool.connection_kwargs["host"] == "queue"
    assert own._redis.connection_pool.connection_kwargs["host"] == "cache"
