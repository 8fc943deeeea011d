"""How full a Redis is: `used_memory` against `maxmemory`, read from INFO and exported as metrics.

The queue and the cache each watch their own Redis (the same one in a one-Redis setup), so that an operator is
alerted before either fills (services/monitoring/prometheus/alerts.yml), and so that the cache can stop
writing before it fills a Redis that does not evict, whose remaining memory the queue needs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from reward_server.metrics import COMPONENTS

log = logging.getLogger(__name__)

# Policies under which a full Redis refuses writes instead of evicting. (The cache's keys all have a TTL, so
# `volatile-*` would evict them; it would also evict the queue's problems and reply streams, which have one:
# the queue's Redis must run `noeviction`, docker-compose.yml does.)
REFUSING_POLICIES = frozenset({"noeviction"})


class RedisMemory:
    """The memory figures of one Redis, refreshed by `poll` at most every `interval_s`."""

    def __init__(self, redis: Redis, store: str, interval_s: float) -> None:
        self.redis = redis
        self.store = store
        self.interval_s = interval_s
        self.used_bytes: int | None = None
        self.max_bytes = 0
        self.policy = ""
        self._polled_at = float("-inf")

    async def poll(self, force: bool = False) -> None:
        """Read INFO memory unless it was read less than `interval_s` ago; keep the last figures on error."""
        now = time.monotonic()
        if not force and now - self._polled_at < self.interval_s:
            return
        self._polled_at = now
        try:
            info: Any = await self.redis.info("memory")
        except (RedisError, OSError) as exc:
            log.debug("INFO memory of the %s Redis failed: %s", self.store, exc)
            return
        self.used_bytes = int(info.get("used_memory", 0))
        self.max_bytes = int(info.get("maxmemory", 0))
        self.policy = str(info.get("maxmemory_policy", ""))
        COMPONENTS.redis_memory_used.labels(self.store).set(self.used_bytes)
        COMPONENTS.redis_memory_max.labels(self.store).set(self.max_bytes)
        COMPONENTS.redis_noeviction.labels(self.store).set(1 if self.refuses_when_full else 0)

    @property
    def refuses_when_full(self) -> bool:
        return self.max_bytes > 0 and self.policy in REFUSING_POLICIES

    def above(self, fraction: float) -> bool:
        """True if this Redis refuses writes when full and is filled past `fraction` of maxmemory."""
        return (
            self.refuses_when_full
            and self.used_bytes is not None
            and self.used_bytes >= fraction * self.max_bytes
        )
