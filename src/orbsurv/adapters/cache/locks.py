"""``Lock`` adapters: Redis (shared by every process) and an in-process twin.

Redis: ``SET name token NX PX ttl`` takes the lock; extending and releasing compare the owner
token in a Lua script, so the check and the write are one atomic step (the single-instance
pattern of the Redis ``SET`` documentation).
"""

from __future__ import annotations

import asyncio
import secrets
import time

from redis.asyncio import Redis

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
        taken = await self._redis.set(
            self._prefix + name, token, nx=True, px=max(1, int(ttl_seconds * 1000))
        )
        return token if taken else None

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        done = await self._extend(
            keys=[self._prefix + name], args=[token, max(1, int(ttl_seconds * 1000))]
        )
        return bool(done)

    async def release(self, name: str, token: str) -> None:
        await self._release(keys=[self._prefix + name], args=[token])


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
