"""``Slots`` adapters: counted leases in Redis (shared by every process) and in memory.

Redis keeps one sorted set per key: member = lease token, score = its expiry in milliseconds of
the Redis server's clock (``TIME``, so the workers' clocks never disagree). Each operation is
one Lua script: drop the expired members, then count, add, renew or remove. The set itself
expires with its longest lease, so an abandoned key disappears.

When Redis does not answer, ``FallbackSlots`` counts in this process's memory (a per-process
bound is looser, never absent), as the rate limiter does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis

from orbsurv.adapters.cache.redis import REDIS_FAULTS, Breaker

logger = logging.getLogger(__name__)

PREFIX = "orbsurv:slots:"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""
# ARGV: lease ms, limit, token. 1 when taken.
_ACQUIRE = (
    _NOW
    + """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
)
# ARGV: lease ms, token. 1 when the lease was live.
_RENEW = (
    _NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisSlots:
    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    async def acquire(self, key: str, limit: int, lease_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        taken = await self._acquire(
            keys=[self._prefix + key], args=[_ms(lease_seconds), limit, token]
        )
        return token if int(taken) == 1 else None

    async def renew(self, key: str, token: str, lease_seconds: float) -> bool:
        done = await self._renew(keys=[self._prefix + key], args=[_ms(lease_seconds), token])
        return int(done) == 1

    async def release(self, key: str, token: str) -> None:
        await self._redis.zrem(self._prefix + key, token)


class MemorySlots:
    """One process only (the embedded default runs one): leases in a dict."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._leases: dict[str, dict[str, float]] = {}
        self._clock = clock
        self._guard = asyncio.Lock()

    def _live(self, key: str) -> dict[str, float]:
        now = self._clock()
        leases = {t: until for t, until in self._leases.get(key, {}).items() if until > now}
        if leases:
            self._leases[key] = leases
        else:
            self._leases.pop(key, None)
        return leases

    async def acquire(self, key: str, limit: int, lease_seconds: float) -> str | None:
        async with self._guard:
            leases = self._live(key)
            if len(leases) >= limit:
                return None
            token = secrets.token_hex(16)
            leases[token] = self._clock() + lease_seconds
            self._leases[key] = leases
            return token

    async def renew(self, key: str, token: str, lease_seconds: float) -> bool:
        async with self._guard:
            leases = self._live(key)
            if token not in leases:
                return False
            leases[token] = self._clock() + lease_seconds
            return True

    async def release(self, key: str, token: str) -> None:
        async with self._guard:
            leases = self._live(key)
            leases.pop(token, None)
            if not leases:
                self._leases.pop(key, None)


class FallbackSlots:
    """Redis while it answers; this process's own memory while it does not (skipping Redis for
    a few seconds after it failed: ``Breaker``)."""

    def __init__(
        self,
        primary: RedisSlots,
        fallback: MemorySlots | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemorySlots()
        self._breaker = breaker or Breaker()
        self._warned_at = 0.0

    def _degraded(self) -> MemorySlots:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            logger.warning("Redis unreachable: upload slots fall back to per-process memory")
        return self._fallback

    async def acquire(self, key: str, limit: int, lease_seconds: float) -> str | None:
        if not self._breaker.open:
            try:
                return await self._primary.acquire(key, limit, lease_seconds)
            except REDIS_FAULTS:
                self._breaker.trip()
        return await self._degraded().acquire(key, limit, lease_seconds)

    async def renew(self, key: str, token: str, lease_seconds: float) -> bool:
        try:
            if await self._primary.renew(key, token, lease_seconds):
                return True
        except REDIS_FAULTS:
            pass
        return await self._fallback.renew(key, token, lease_seconds)

    async def release(self, key: str, token: str) -> None:
        with contextlib.suppress(*REDIS_FAULTS):
            await self._primary.release(key, token)
        await self._fallback.release(key, token)
