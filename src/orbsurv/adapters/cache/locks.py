"""``Lock`` adapters: Redis (shared by every process) and an in-process twin.

Redis: ``SET name token NX PX ttl`` takes the lock; extending and releasing compare the owner
token in a Lua script, so the check and the write are one atomic step (the single-instance
pattern of the Redis ``SET`` documentation). When Redis fails, taking a lock raises
``DependencyUnavailable`` (503: nothing was done); extending answers ``False`` (the holder can no
longer prove it holds the lock, so it stops); releasing logs and lets the lock lapse at its TTL,
so a finished operation is not turned into a failure.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from redis.asyncio import Redis

from orbsurv.adapters.cache.redis import REDIS_FAULTS
from orbsurv.domain.errors import DependencyUnavailable

logger = logging.getLogger(__name__)
UNAVAILABLE = "The lock service (Redis) is unavailable; try again in a moment."

_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
PREFIX = "orbsurv:lock:"


class RedisLock:
    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        try:
            taken = await self._redis.set(
                self._prefix + name, token, nx=True, px=max(1, int(ttl_seconds * 1000))
            )
        except REDIS_FAULTS as exc:
            raise DependencyUnavailable(UNAVAILABLE) from exc
        return token if taken else None

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        try:
            done = await self._extend(
                keys=[self._prefix + name], args=[token, max(1, int(ttl_seconds * 1000))]
            )
        except REDIS_FAULTS:
            logger.warning("could not extend lock %s: Redis unavailable", name)
            return False
        return bool(done)

    async def release(self, name: str, token: str) -> None:
        try:
            await self._release(keys=[self._prefix + name], args=[token])
        except REDIS_FAULTS:
            logger.warning("could not release lock %s: Redis unavailable; it lapses", name)


class MemoryLock:
    """One process only: locks live in a dict guarded by the event loop."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._guard = asyncio.Lock()

    def _live(self, name: str) -> tuple[str, float] | None:
        held = self._held.get(name)
        if held is not None and held[1] <= time.monotonic():
            del self._held[name]
            return None
        return held

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        async with self._guard:
            if self._live(name) is not None:
                return None
            token = secrets.token_hex(16)
            self._held[name] = (token, time.monotonic() + ttl_seconds)
            return token

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        async with self._guard:
            held = self._live(name)
            if held is None or held[0] != token:
                return False
            self._held[name] = (token, time.monotonic() + ttl_seconds)
            return True

    async def release(self, name: str, token: str) -> None:
        async with self._guard:
            held = self._live(name)
            if held is not None and held[0] == token:
                del self._held[name]
