"""Rate limiting on Redis: each event one atomic Lua script, with a per-process fallback when
Redis does not answer (never "let everything through").

The events of concurrent requests share round trips: those that arrive while a call is in
flight go out together in the next one, as one script call over all their keys (the script runs
atomically, so each counter sees its events one at a time; one Redis, not a cluster, since the
keys of a batch fall in any hash slot).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.asyncio import Redis

from orbsurv.adapters.batching import Batcher
from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.adapters.cache.redis import REDIS_FAULTS, Breaker
from orbsurv.application.identity.ports import RateDecision, RateLimiter

T = TypeVar("T")

MAX_BATCH = 128  # events per script call; one call in flight at a time

logger = logging.getLogger(__name__)

PREFIX = "orbsurv:rate:"

# KEYS: one counter per event (a key may repeat); ARGV: window ms, limit, block ms (0: none)
# for each event in turn. Returns {count1, ttl1 ms, count2, ttl2 ms, ...}.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local window, limit, block = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  if block > 0 and count == limit then redis.call('PEXPIRE', key, block) end
  out[2 * i - 1] = count
  out[2 * i] = redis.call('PTTL', key)
end
return out
"""
# KEYS[1] counter: one event uncounted, never below zero, the expiry kept.
_GIVE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
"""
# Any number of keys; returns {count1, ttl1, count2, ttl2, ...}.
_PEEK = """
local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = tonumber(redis.call('GET', key) or '0')
  out[2 * i] = redis.call('PTTL', key)
end
return out
"""


def _seconds(ttl_ms: int) -> int:
    return max(1, math.ceil(ttl_ms / 1000)) if ttl_ms > 0 else 1


_Hit = tuple[str, int, int, int]  # key, window ms, limit, block ms


class RedisRateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hit = redis.register_script(_HIT)
        self._peek = redis.register_script(_PEEK)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._hits: Batcher[_Hit, tuple[int, int]] = Batcher(
            self._hit_batch,
            max_batch=MAX_BATCH,
            name="rate-limit-batch",
        )

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, block_seconds: int | None = None
    ) -> RateDecision:
        count, ttl = await self._hits.submit(
            (PREFIX + key, window_seconds * 1000, limit, (block_seconds or 0) * 1000)
        )
        return RateDecision(count <= limit, count, _seconds(ttl))

    async def close(self) -> None:
        await self._hits.close()

    async def _hit_batch(self, hits: list[_Hit]) -> list[tuple[int, int] | BaseException]:
        """One script call for the batch (the script object loads itself again when Redis has
        forgotten it: a restart, SCRIPT FLUSH)."""
        arguments: list[int] = []
        for _, window_ms, limit, block_ms in hits:
            arguments += (window_ms, limit, block_ms)
        answer = await self._hit(keys=[hit[0] for hit in hits], args=arguments)
        return [(int(answer[2 * n]), int(answer[2 * n + 1])) for n in range(len(hits))]

    async def peek(self, key: str, *, limit: int) -> RateDecision:
        return (await self.peek_many([(key, limit)]))[0]

    async def peek_many(self, checks: Sequence[tuple[str, int]]) -> list[RateDecision]:
        answer = await self._peek(keys=[PREFIX + key for key, _ in checks])
        decisions = []
        for n, (_, limit) in enumerate(checks):
            count, ttl = int(answer[2 * n]), int(answer[2 * n + 1])
            decisions.append(RateDecision(count < limit, count, _seconds(ttl) if count else 0))
        return decisions

    async def reset(self, key: str) -> None:
        await self._redis.delete(PREFIX + key)

    async def give_back(self, key: str) -> None:
        await self._give_back(keys=[PREFIX + key])


class FallbackRateLimiter:
    """Redis while it answers; this process's own memory while it does not. After a failure
    Redis is skipped for a few seconds (``Breaker``), so one request pays one timeout, not one
    per key it checks."""

    def __init__(
        self,
        primary: RedisRateLimiter,
        fallback: MemoryRateLimiter | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryRateLimiter()
        self._breaker = breaker or Breaker()
        self._warned_at = 0.0

    def _degraded(self) -> MemoryRateLimiter:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            logger.warning("Redis unreachable: rate limits fall back to per-process memory")
        return self._fallback

    async def _either(self, call: Callable[[RateLimiter], Awaitable[T]]) -> T:
        """``call`` on Redis unless the breaker is open; on this process's memory otherwise or
        when Redis fails (which opens the breaker)."""
        if not self._breaker.open:
            try:
                return await call(self._primary)
            except REDIS_FAULTS:
                self._breaker.trip()
        return await call(self._degraded())

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, block_seconds: int | None = None
    ) -> RateDecision:
        return await self._either(
            lambda limiter: limiter.hit(
                key, limit=limit, window_seconds=window_seconds, block_seconds=block_seconds
            )
        )

    async def peek(self, key: str, *, limit: int) -> RateDecision:
        return await self._either(lambda limiter: limiter.peek(key, limit=limit))

    async def peek_many(self, checks: Sequence[tuple[str, int]]) -> list[RateDecision]:
        return await self._either(lambda limiter: limiter.peek_many(checks))

    async def reset(self, key: str) -> None:
        await self._either(lambda limiter: limiter.reset(key))

    async def give_back(self, key: str) -> None:
        await self._either(lambda limiter: limiter.give_back(key))
