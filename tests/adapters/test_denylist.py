"""TokenDenylist: the in-memory twin and Redis (with its per-worker mirror)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from orbsurv.adapters.cache.denylist import PREFIX, RedisTokenDenylist
from orbsurv.adapters.cache.memory import ExpiringSet, MemoryTokenDenylist
from orbsurv.adapters.cache.redis import make_redis
from orbsurv.application.identity.ports import CacheUnavailable, TokenDenylist
from tests.services import free_port


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = make_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[Redis], asyncio.Future[RedisTokenDenylist]]]:
    running: list[RedisTokenDenylist] = []

    async def start(client: Redis) -> RedisTokenDenylist:
        denylist = RedisTokenDenylist(client, resync_delay=0.05)
        await denylist.start()
        running.append(denylist)
        return denylist

    yield start  # type: ignore[misc]
    for denylist in running:
        await denylist.stop()


@pytest.fixture(params=["memory", "redis"])
async def denylist(request: pytest.FixtureRequest) -> AsyncIterator[TokenDenylist]:
    if request.param == "memory":
        yield MemoryTokenDenylist()
        return
    client = make_redis(request.getfixturevalue("redis_url"))  # a sync fixture: safe to fetch here
    redis_denylist = RedisTokenDenylist(client, resync_delay=0.05)
    await redis_denylist.start()
    yield redis_denylist
    await redis_denylist.stop()
    await client.aclose()


def sid() -> str:
    return str(uuid.uuid4())


async def test_revoked_sessions_are_reported(denylist: TokenDenylist) -> None:
    revoked, other = sid(), sid()
    assert not await denylist.is_session_revoked(revoked)
    await denylist.revoke_sessions([revoked], ttl_seconds=60)
    assert await denylist.is_session_revoked(revoked)
    assert not await denylist.is_session_revoked(other)
    await denylist.revoke_sessions([], ttl_seconds=60)  # nothing to do is fine


def test_expiring_set_forgets_after_its_ttl() -> None:
    now = [100.0]
    keys = ExpiringSet(clock=lambda: now[0])
    keys.add("a", 10)
    assert "a" in keys
    now[0] += 9.9
    assert "a" in keys
    now[0] += 0.2
    assert "a" not in keys


async def poll(condition: Callable[[], object], deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not await condition():  # type: ignore[misc]
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


@pytest.mark.redis
async def test_a_revocation_reaches_every_worker(
    redis_client: Redis,
    redis_url: str,
    started: Callable[[Redis], asyncio.Future[RedisTokenDenylist]],
) -> None:
    first = await started(redis_client)
    other_client = make_redis(redis_url)
    try:
        second = await started(other_client)
        await asyncio.wait_for(second.wait_synced(), 30)
        session = sid()
        await first.revoke_sessions([session], ttl_seconds=60)
        await other_client.delete(
            f"{PREFIX}{session}"
        )  # only the published message can tell it now

        async def seen() -> bool:
            return await second.is_session_revoked(session)

        await poll(seen)
    finally:
        await other_client.aclose()


@pytest.mark.redis
async def test_a_new_worker_loads_current_revocations(
    redis_client: Redis, started: Callable[[Redis], asyncio.Future[RedisTokenDenylist]]
) -> None:
    first = await started(redis_client)
    session = sid()
    await first.revoke_sessions([session], ttl_seconds=60)
    ttl = await redis_client.ttl(f"{PREFIX}{session}")
    assert 0 < ttl <= 60
    late = await started(redis_client)
    await asyncio.wait_for(late.wait_synced(), 30)
    assert late.synced
    assert await late.is_session_revoked(session)


async def test_unreachable_redis_is_reported_not_guessed() -> None:
    client = make_redis(f"redis://127.0.0.1:{free_port()}/0")
    denylist = RedisTokenDenylist(client, resync_delay=0.05)
    await denylist.start()
    try:
        with pytest.raises(CacheUnavailable):
            await denylist.is_session_revoked(sid())
        session = sid()
        await denylist.revoke_sessions([session], ttl_seconds=60)  # never raises
        assert await denylist.is_session_revoked(session)  # this worker knows its own
    finally:
        await denylist.stop()
        await client.aclose()
