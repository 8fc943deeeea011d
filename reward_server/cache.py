"""Result cache: an in-memory LRU by default, Redis when REWARD_CACHE_REDIS_URL or REWARD_REDIS_URL is set.

Keys hash (backend, backend version, canonical reference, completion), so a retried request is answered
from the cache and cannot count twice; a new backend version never reads old verdicts, and the built-in
backends derive their versions from their rules (`backends.rules_version`). The cache is an
optimisation: if Redis fails, grading goes on uncached and the failure is counted, nothing is lost.

Memory: verdicts accumulate (millions per week of training), so the cache belongs in a Redis that evicts
(`allkeys-lru`, its own store: REWARD_CACHE_REDIS_URL). Where it shares the queue's Redis, which must not
evict (`noeviction`), it stops writing at REWARD_CACHE_MAX_FILL of `maxmemory`, so that it can never fill the
memory the queue needs to accept and answer jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from cachetools import LRUCache
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from reward_server.metrics import COMPONENTS
from reward_server.redis_memory import RedisMemory
from reward_server.settings import RewardSettings

log = logging.getLogger(__name__)
KEY_PREFIX = "rs:v1:"
# The cache reads its Redis's memory figures at most this often, and after this many writes at the latest,
# so that it stops writing near the limit rather than well past it.
MEMORY_POLL_S = 1.0
MEMORY_POLL_WRITES = 1000


def cache_key(*parts: str) -> str:
    """Stable key of a tuple of strings (lone surrogates in completions must not crash the hash)."""
    payload = json.dumps(parts, ensure_ascii=True).encode("ascii")
    return KEY_PREFIX + hashlib.sha256(payload).hexdigest()


class ResultCache(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[Any | None]: ...

    async def set_many(self, items: dict[str, Any]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCache:
    """Process-local LRU of JSON-able values."""

    def __init__(self, max_entries: int) -> None:
        self._entries: LRUCache[str, Any] = LRUCache(maxsize=max(1, max_entries))

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        return [self._entries.get(key) for key in keys]

    async def set_many(self, items: dict[str, Any]) -> None:
        self._entries.update(items)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()


def build_cache(settings: RewardSettings) -> ResultCache:
    """The cache the settings ask for: its own Redis, the queue's Redis, or in memory."""
    url = settings.cache_redis_url or settings.redis_url
    if url is None:
        return MemoryCache(settings.cache_size)
    return RedisCache(url.get_secret_value(), settings.cache_ttl_s, max_fill=settings.cache_max_fill)


class RedisCache:
    """Shared cache in Redis (values as JSON, each with a TTL). Errors degrade to cache misses.

    `max_fill`: in a Redis that refuses writes when full, stop writing past this fraction of maxmemory.
    """

    def __init__(self, url: str, ttl_s: int, max_fill: float = 0.8) -> None:
        # A bounded pool that makes callers wait for a connection: under a burst of concurrent groups the
        # default pool raises "Too many connections" at 100, which would turn every lookup into a miss.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=5, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self._redis = Redis.from_pool(pool)  # owns the pool: close() disconnects it
        self._ttl_s = ttl_s
        self._max_fill = max_fill
        self._memory = RedisMemory(self._redis, "cache", interval_s=MEMORY_POLL_S)
        self._writes_since_poll = 0
        self.errors = 0
        self.skipped = 0

    async def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        if not keys:
            return []
        try:
            raw = await self._redis.mget(list(keys))
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return [None] * len(keys)
        return [None if value is None else json.loads(value) for value in raw]

    async def set_many(self, items: dict[str, Any]) -> None:
        if not items:
            return
        await self._memory.poll(force=self._writes_since_poll >= MEMORY_POLL_WRITES)
        if self._writes_since_poll >= MEMORY_POLL_WRITES:
            self._writes_since_poll = 0
        if self._memory.above(self._max_fill):
            # The rest of this Redis is the queue's: a verdict not cached costs a regrade on a retry, a queue
            # that cannot write refuses every code request.
            self.skipped += len(items)
            COMPONENTS.cache_write_skips.labels("redis_nearly_full").inc(len(items))
            return
        self._writes_since_poll += len(items)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, json.dumps(value), ex=self._ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            COMPONENTS.cache_write_skips.labels("redis_error").inc(len(items))
            self._failed("write", exc)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        log.warning("redis cache %s failed, grading without cache: %s", what, exc)
