"""Lock: one contract for the in-memory twin, Redis and the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from orbsurv.adapters.cache.locks import MemoryLock, RedisLock
from orbsurv.adapters.cache.redis import make_redis
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.locks import SqlLock
from orbsurv.application.locking import Lock
from orbsurv.domain.errors import DependencyUnavailable
from tests.services import free_port


@pytest.fixture(params=["memory", "redis", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The kind of lock and the URL of its server (fetched here: a sync fixture may)."""
    fixture = {
        "memory": None,
        "redis": "redis_url",
        "sqlite": "sqlite_database_url",
        "postgres": "postgres_url",
    }[request.param]
    return request.param, None if fixture is None else request.getfixturevalue(fixture)


@pytest.fixture
async def lock(backend: tuple[str, str | None]) -> AsyncIterator[Lock]:
    kind, url = backend
    if kind == "memory":
        yield MemoryLock()
    elif kind == "redis":
        assert url is not None
        client = make_redis(url)
        yield RedisLock(client)
        await client.aclose()
    else:
        assert url is not None
        engine = make_engine(url)
        yield SqlLock(engine)
        await engine.dispose()


def name() -> str:
    return f"test-lock:{uuid.uuid4()}"


async def test_one_holder_at_a_time(lock: Lock) -> None:
    n = name()
    token = await lock.acquire(n, 30)
    assert token is not None
    assert await lock.acquire(n, 30) is None
    await lock.release(n, token)
    again = await lock.acquire(n, 30)
    assert again is not None
    assert again != token


async def test_only_the_owner_extends_or_releases(lock: Lock) -> None:
    n = name()
    token = await lock.acquire(n, 30)
    assert token is not None
    assert not await lock.extend(n, "someone-else", 30)
    await lock.release(n, "someone-else")
    assert await lock.acquire(n, 30) is None  # still held
    assert await lock.extend(n, token, 30)
    await lock.release(n, token)


async def test_an_expired_lock_is_free_and_its_old_owner_cannot_touch_it(lock: Lock) -> None:
    n = name()
    old = await lock.acquire(n, 0.2)
    assert old is not None
    deadline = time.monotonic() + 30
    new = None
    while new is None and time.monotonic() < deadline:
        new = await lock.acquire(n, 30)
        if new is None:
            await asyncio.sleep(0.05)
    assert new is not None
    assert not await lock.extend(n, old, 30)
    await lock.release(n, old)  # must not free the new owner's lock
    assert await lock.acquire(n, 30) is None
    await lock.release(n, new)


async def test_concurrent_acquires_have_one_winner(lock: Lock) -> None:
    n = name()
    tokens = await asyncio.gather(*(lock.acquire(n, 30) for _ in range(8)))
    assert sum(token is not None for token in tokens) == 1


async def test_a_redis_that_does_not_answer_is_a_dependency_fault_not_a_crash() -> None:
    """Taking the lock is 503-worthy (nothing was done); extending says "not held" and
    releasing lets the lock lapse, so neither turns a finished operation into a failure."""
    client = make_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    lock = RedisLock(client)
    try:
        with pytest.raises(DependencyUnavailable):
            await lock.acquire(name(), 5)
        assert await lock.extend(name(), "token", 5) is False
        await lock.release(name(), "token")
    finally:
        await client.aclose()
