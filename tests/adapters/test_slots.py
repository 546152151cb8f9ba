"""Slots (counted leases): one contract for the in-memory twin, Redis, and Redis with its
per-process fallback; and the upload gate built on them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from orbsurv.adapters.cache.redis import make_redis
from orbsurv.adapters.cache.slots import FallbackSlots, MemorySlots, RedisSlots
from orbsurv.application.slots import Slots, UploadGate
from orbsurv.domain.errors import RateLimited


@pytest.fixture(params=["memory", "redis", "fallback"])
async def slots(request: pytest.FixtureRequest) -> AsyncIterator[Slots]:
    if request.param == "memory":
        yield MemorySlots()
        return
    client = make_redis(request.getfixturevalue("redis_url"))
    prefix = f"test-slots:{uuid.uuid4().hex}:"
    primary = RedisSlots(client, prefix=prefix)
    yield primary if request.param == "redis" else FallbackSlots(primary)
    await client.aclose()


def key() -> str:
    return f"uploads:{uuid.uuid4()}"


async def test_at_most_limit_holders_and_a_released_slot_comes_back(slots: Slots) -> None:
    k = key()
    tokens = [await slots.acquire(k, 3, 30) for _ in range(3)]
    assert all(tokens)
    assert len(set(tokens)) == 3
    assert await slots.acquire(k, 3, 30) is None
    first = tokens[0]
    assert first is not None
    await slots.release(k, first)
    assert await slots.acquire(k, 3, 30) is not None
    assert await slots.acquire(k, 3, 30) is None


async def test_keys_are_counted_apart(slots: Slots) -> None:
    one, other = key(), key()
    assert await slots.acquire(one, 1, 30) is not None
    assert await slots.acquire(other, 1, 30) is not None
    assert await slots.acquire(one, 1, 30) is None


async def test_an_expired_lease_no_longer_counts(slots: Slots) -> None:
    """A holder that died (never released) gives its slot back when its lease runs out."""
    k = key()
    stale = await slots.acquire(k, 1, 0.2)
    assert stale is not None
    deadline = time.monotonic() + 5
    while (fresh := await slots.acquire(k, 1, 30)) is None:
        assert time.monotonic() < deadline, "the expired lease still counts"
        await asyncio.sleep(0.05)
    assert not await slots.renew(k, stale, 30)  # the dead holder cannot come back
    assert await slots.renew(k, fresh, 30)


async def test_a_renewed_lease_outlives_its_first_expiry(slots: Slots) -> None:
    k = key()
    token = await slots.acquire(k, 1, 0.5)
    assert token is not None
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert await slots.renew(k, token, 0.5)
    assert await slots.acquire(k, 1, 30) is None


async def test_release_of_an_unknown_token_changes_nothing(slots: Slots) -> None:
    k = key()
    assert await slots.acquire(k, 1, 30) is not None
    await slots.release(k, "not-a-token")
    assert await slots.acquire(k, 1, 30) is None


async def test_concurrent_acquires_never_exceed_the_limit(slots: Slots) -> None:
    k = key()
    taken = await asyncio.gather(*(slots.acquire(k, 4, 30) for _ in range(20)))
    assert sum(token is not None for token in taken) == 4


async def test_without_redis_the_fallback_still_bounds() -> None:
    """Redis down: the fallback counts in this process, never lets everything through."""
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens
    slots = FallbackSlots(RedisSlots(client))
    k = key()
    tokens = [await slots.acquire(k, 2, 30) for _ in range(3)]
    assert [t is not None for t in tokens] == [True, True, False]
    first = tokens[0]
    assert first is not None
    await slots.release(k, first)
    assert await slots.acquire(k, 2, 30) is not None
    await client.aclose()


async def test_the_gate_refuses_one_more_with_429_and_gives_slots_back() -> None:
    gate = UploadGate(MemorySlots(), per_user=2)
    async with gate.hold("u"), gate.hold("u"):
        with pytest.raises(RateLimited) as refused:
            async with gate.hold("u"):
                pass  # pragma: no cover - refused before the body
        assert refused.value.code == "too_many_uploads"
        assert refused.value.retry_after >= 1
        async with gate.hold("someone else"):
            pass
    with pytest.raises(ValueError, match="upload failed"):
        async with gate.hold("u"):
            raise ValueError("the upload failed")
    async with gate.hold("u"), gate.hold("u"):  # every exit gave its slot back
        pass


async def test_the_gate_renews_its_lease_while_the_upload_runs() -> None:
    slots = MemorySlots()
    gate = UploadGate(slots, per_user=1, lease_seconds=0.3)
    async with gate.hold("u"):
        await asyncio.sleep(1.0)  # three lease lengths: only renewals keep the slot
        assert await slots.acquire("uploads:u", 1, 30) is None
