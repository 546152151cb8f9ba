"""RateLimiter: the in-memory twin, Redis (one Lua round trip), and the fallback wrapper."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from orbsurv.adapters.cache.limiter import FallbackRateLimiter, RedisRateLimiter
from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.adapters.cache.redis import Breaker, make_redis
from orbsurv.application.identity.ports import RateLimiter
from tests.fault_proxy import black_hole
from tests.services import free_port


@pytest.fixture(params=["memory", "redis", "redis-with-fallback"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = make_redis(request.getfixturevalue("redis_url"))  # a sync fixture: safe to fetch here
    redis_limiter = RedisRateLimiter(client)
    yield redis_limiter if request.param == "redis" else FallbackRateLimiter(redis_limiter)
    await redis_limiter.close()
    await client.aclose()


def key() -> str:
    return f"test:{uuid.uuid4()}"


async def test_counts_up_to_the_limit(limiter: RateLimiter) -> None:
    k = key()
    decisions = [await limiter.hit(k, limit=3, window_seconds=60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.count for d in decisions] == [1, 2, 3, 4, 5]
    assert all(0 < d.retry_after <= 60 for d in decisions)


async def test_peek_does_not_count(limiter: RateLimiter) -> None:
    k = key()
    assert (await limiter.peek(k, limit=2)).allowed
    assert (await limiter.peek(k, limit=2)).count == 0
    await limiter.hit(k, limit=2, window_seconds=60)
    assert (await limiter.peek(k, limit=2)).allowed
    await limiter.hit(k, limit=2, window_seconds=60)
    blocked = await limiter.peek(k, limit=2)
    assert not blocked.allowed
    assert blocked.count == 2
    assert 0 < blocked.retry_after <= 60


async def test_reaching_the_limit_blocks_for_the_block_time(limiter: RateLimiter) -> None:
    k = key()
    for _ in range(4):
        await limiter.hit(k, limit=5, window_seconds=60, block_seconds=900)
    fifth = await limiter.hit(k, limit=5, window_seconds=60, block_seconds=900)
    assert fifth.allowed  # the fifth failure is counted, then the lock starts
    assert 840 < fifth.retry_after <= 900
    assert 840 < (await limiter.peek(k, limit=5)).retry_after <= 900


async def test_keys_are_independent_and_reset(limiter: RateLimiter) -> None:
    a, b = key(), key()
    await limiter.hit(a, limit=1, window_seconds=60)
    assert not (await limiter.hit(a, limit=1, window_seconds=60)).allowed
    assert (await limiter.hit(b, limit=1, window_seconds=60)).allowed
    await limiter.reset(a)
    assert (await limiter.hit(a, limit=1, window_seconds=60)).allowed


async def test_concurrent_hits_are_each_counted_once(limiter: RateLimiter) -> None:
    # Redis counts the hits of concurrent requests in shared script calls: still one count each.
    keys = [key() for _ in range(3)]
    decisions = await asyncio.gather(
        *(limiter.hit(keys[n % 3], limit=10, window_seconds=60) for n in range(60))
    )
    for k in range(3):
        counts = sorted(d.count for n, d in enumerate(decisions) if n % 3 == k)
        assert counts == list(range(1, 21))
    assert sum(d.allowed for d in decisions) == 30


async def test_a_script_redis_forgot_is_loaded_again_without_counting_twice(
    redis_url: str,
) -> None:
    client = make_redis(redis_url)
    limiter = RedisRateLimiter(client)
    try:
        k = key()
        assert (await limiter.hit(k, limit=5, window_seconds=60)).count == 1
        await client.script_flush()  # as after a restart of Redis
        decisions = await asyncio.gather(
            *(limiter.hit(k, limit=5, window_seconds=60) for _ in range(4))
        )
        assert sorted(d.count for d in decisions) == [2, 3, 4, 5]
    finally:
        await limiter.close()
        await client.aclose()


async def test_give_back_uncounts_one_event_and_never_goes_below_zero(
    limiter: RateLimiter,
) -> None:
    k = key()
    for _ in range(3):
        await limiter.hit(k, limit=3, window_seconds=60)
    assert not (await limiter.peek(k, limit=3)).allowed
    await limiter.give_back(k)
    assert (await limiter.peek(k, limit=3)).count == 2
    for _ in range(4):
        await limiter.give_back(k)
    assert (await limiter.peek(k, limit=3)).count == 0
    assert (await limiter.hit(k, limit=3, window_seconds=60)).count == 1
    await limiter.give_back(key())  # an unknown key: nothing to give back, no error


async def test_without_redis_the_fallback_still_limits() -> None:
    client = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    limiter = FallbackRateLimiter(RedisRateLimiter(client))
    try:
        k = key()
        allowed = [(await limiter.hit(k, limit=2, window_seconds=60)).allowed for _ in range(3)]
        assert allowed == [True, True, False]  # never "let everything through"
        assert not (await limiter.peek(k, limit=2)).allowed
    finally:
        await client.aclose()


async def test_peek_many_answers_each_key(limiter: RateLimiter) -> None:
    blocked, free = key(), key()
    await limiter.hit(blocked, limit=1, window_seconds=60)
    first, second = await limiter.peek_many([(blocked, 1), (free, 1)])
    assert not first.allowed
    assert first.count == 1
    assert second.allowed
    assert second.count == 0


async def test_a_silent_redis_costs_one_timeout_then_the_breaker_skips_it() -> None:
    """A Redis that accepts and never answers: the first call waits out the client's timeout
    and opens the breaker; the calls after it go straight to memory, still limiting; once the
    breaker's window ends, Redis is tried again."""
    hole = black_hole()
    clock = [0.0]
    client = make_redis(f"redis://127.0.0.1:{hole.port}/0", timeout=0.3)
    limiter = FallbackRateLimiter(
        RedisRateLimiter(client), breaker=Breaker(open_seconds=5, clock=lambda: clock[0])
    )
    try:
        started = time.monotonic()
        assert (await limiter.hit("k", limit=2, window_seconds=60)).allowed
        first = time.monotonic() - started
        started = time.monotonic()
        assert (await limiter.hit("k", limit=2, window_seconds=60)).allowed
        assert not (await limiter.hit("k", limit=2, window_seconds=60)).allowed
        assert (await limiter.peek("k", limit=2)).count == 3
        rest = time.monotonic() - started
        assert first >= 0.3
        assert rest < 0.2, rest  # no Redis timeout while the breaker is open
        clock[0] = 6.0  # the window is over: Redis is asked again (and fails again)
        started = time.monotonic()
        await limiter.hit("k", limit=2, window_seconds=60)
        assert time.monotonic() - started >= 0.3
    finally:
        await client.aclose()
        hole.close()
