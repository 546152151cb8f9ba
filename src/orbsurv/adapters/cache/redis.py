"""The shared Redis client and its readiness probe."""

from __future__ import annotations

from redis.asyncio import Redis


def make_redis(url: str, *, timeout: float = 2.0) -> Redis:
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        decode_responses=False,
    )


class CacheProbe:
    """Readiness of whichever cache serves this process."""

    name = "cache"

    async def check(self) -> None:
        raise NotImplementedError


class RedisProbe(CacheProbe):
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def check(self) -> None:
        if not await self._redis.ping():  # type: ignore[misc]
            raise ConnectionError("Redis did not answer PING")


class MemoryCacheProbe(CacheProbe):
    """The in-memory cache lives in this process: it is ready whenever the process is."""

    async def check(self) -> None:
        return None
