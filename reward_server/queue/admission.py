"""Back-pressure: admit a request's code jobs against REWARD_QUEUE_MAX_DEPTH, all servers together, at once.

The depth is the sum of the reservations of the requests in flight (`RequestState.charge`, refreshed by each
server every second). Check and reservation are one Lua script, so two servers cannot both take the last room;
requests whose server stopped refreshing them (it died) are dropped from the sum on the way.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from reward_server.queue.protocol import QueueKeys

# KEYS: the registry of requests (sorted set: key -> last refresh), their reservations (hash: key -> jobs).
# ARGV: now, the refresh time before which a request is dead, the request's key, its jobs, the limit.
# Returns {1 if admitted, the depth before it}.
_RESERVE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
for _, key in ipairs(stale) do
    redis.call('HDEL', KEYS[2], key)
end
if #stale > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
end
local depth = 0
for _, jobs in ipairs(redis.call('HVALS', KEYS[2])) do
    depth = depth + tonumber(jobs)
end
local wanted = tonumber(ARGV[4])
if depth + wanted > tonumber(ARGV[5]) then
    return {0, depth}
end
redis.call('HINCRBY', KEYS[2], ARGV[3], wanted)
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
return {1, depth}
"""


class Admission:
    def __init__(self, redis: aioredis.Redis, keys: QueueKeys) -> None:
        self.keys = keys
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(
        self, request_key: str, jobs: int, max_depth: int, now: float, stale_before: float
    ) -> tuple[bool, int]:
        """Reserve `jobs` for `request_key` if the depth allows; (admitted, depth before). Raises Redis errors
        (out of memory included)."""
        answer: Any = await self._reserve(
            keys=[self.keys.requests, self.keys.reservations],
            args=[now, stale_before, request_key, jobs, max_depth],
        )
        return bool(int(answer[0])), int(answer[1])
