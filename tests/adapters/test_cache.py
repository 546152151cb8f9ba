"""Cache adapters: the in-memory twin and Redis, through the readiness probe."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from orbsurv.adapters.cache.redis import MemoryCacheProbe, RedisProbe, make_redis
from tests.services import free_port


async def test_memory_cache_is_always_ready() -> None:
    await MemoryCacheProbe().check()


@pytest.mark.redis
async def test_redis_probe_answers(redis_url: str) -> None:
    client = make_redis(redis_url)
    try:
        await RedisProbe(client).check()
    finally:
        await client.aclose()


async def test_redis_probe_fails_when_redis_is_gone() -> None:
    client = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await RedisProbe(client).check()
    finally:
        await client.aclose()
