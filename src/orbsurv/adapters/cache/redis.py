"""The shared Redis client and its readiness probe."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

#: What a Redis call raises when Redis (not our code) fails: the client's own errors, the
#: socket's, and the ``RuntimeError`` uvloop raises for a write on a transport that a reset
#: closed underneath the client ("unable to perform operation on <TCPTransport closed=True>").
REDIS_FAULTS: tuple[type[Exception], ...] = (RedisError, OSError, RuntimeError)


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
