"""The shared Redis client and its readiness probe."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

#: What a Redis call raises when Redis (not our code) fails: the client's own errors, the
#: socket's, and the ``RuntimeError`` uvloop raises for a write on a transport that a reset
#: closed underneath the client ("unable to perform operation on <TCPTransport closed=True>").
REDIS_FAULTS: tuple[type[Exception], ...] = (RedisError, OSError, RuntimeError)


class Breaker:
    """A circuit breaker for a fallback: once Redis has failed, skip it for ``open_seconds``.

    Without it every call during an outage waits out ``REDIS_TIMEOUT_SECONDS`` before falling
    back, and a request that makes several calls (a sign-in checks and spends several rate-limit
    keys) waits them all out in turn: about 8 s at the default 2 s against a black-holed Redis.
    With it the first call pays the timeout and the rest of the window goes straight to the
    fallback; the first call after the window tries Redis again, so the fallback ends within
    ``open_seconds`` of Redis coming back (the "circuit breaker" of Nygard's *Release It!*).
    """

    def __init__(
        self, open_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._open_seconds = open_seconds
        self._clock = clock
        self._until = 0.0

    @property
    def open(self) -> bool:
        """Whether calls should skip Redis now."""
        return self._clock() < self._until

    def trip(self) -> None:
        self._until = self._clock() + self._open_seconds


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
