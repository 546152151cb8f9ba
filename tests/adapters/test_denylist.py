"""TokenDenylist: the in-memory twin and Redis, each a mirror of the sessions table's recent
revocations, read from the database at start and after every Redis resync."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.cache.denylist import RedisTokenDenylist
from orbsurv.adapters.cache.memory import ExpiringSet, MemoryTokenDenylist
from orbsurv.adapters.cache.redis import make_redis
from orbsurv.adapters.persistence.sessions import SqlSessionRepository, SqlSessionRevocations
from orbsurv.adapters.security.tokens import JwtTokenCodec
from orbsurv.application.identity.authenticate import Authenticate
from orbsurv.application.identity.ports import CacheUnavailable, Revocation
from orbsurv.application.identity.sessions import SessionIssuer
from orbsurv.domain.errors import DependencyUnavailable, Unauthenticated
from orbsurv.domain.identity import Role, Scope
from tests.adapters.test_sessions_repository import seed_session
from tests.services import free_port, own_redis

LIFETIME = 60 * 15 + 5 + 1


class FakeRevocations:
    """The sessions table's revocations, or a database that does not answer."""

    def __init__(self) -> None:
        self.rows: list[Revocation] = []
        self.down = False
        self.reads = 0

    def revoke(self, session_id: str, at: float | None = None) -> None:
        moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
        self.rows.append(Revocation(session_id, moment))

    async def revoked_since(self, cutoff: datetime) -> list[Revocation]:
        self.reads += 1
        if self.down:
            raise DependencyUnavailable("database down")
        return [row for row in self.rows if row.revoked_at >= cutoff]


class FakeStatus:
    def __init__(self, revoked: set[str]) -> None:
        self.revoked = revoked

    async def is_revoked(self, session_id: str) -> bool:
        return session_id in self.revoked


Start = Callable[..., Awaitable[Any]]


@pytest.fixture
async def started() -> AsyncIterator[Start]:
    """Start a denylist ("memory" or a Redis URL) over ``source``; stopped at the end."""
    running: list[Any] = []
    clients: list[Redis] = []

    async def start(kind: str, source: Any, **options: Any) -> Any:
        denylist: Any
        if kind == "memory":
            denylist = MemoryTokenDenylist(source, lifetime_seconds=LIFETIME, **options)
        else:
            client = make_redis(kind)
            clients.append(client)
            options.setdefault("resync_delay", 0.05)
            denylist = RedisTokenDenylist(client, source, lifetime_seconds=LIFETIME, **options)
        await denylist.start()
        running.append(denylist)
        return denylist

    yield start
    for denylist in running:
        await denylist.stop()
    for client in clients:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    url: str = request.getfixturevalue("redis_url")
    return url


def sid() -> str:
    return str(uuid.uuid4())


async def poll(condition: Callable[[], Awaitable[bool]], deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def answer(denylist: Any, session_id: str) -> bool | None:
    """The denylist's answer, ``None`` when it says it cannot be trusted."""
    try:
        return bool(await denylist.is_session_revoked(session_id))
    except CacheUnavailable:
        return None


async def test_revoked_sessions_are_reported(kind: str, started: Start) -> None:
    denylist = await started(kind, FakeRevocations())
    await asyncio.wait_for(denylist.wait_synced(), 30)
    revoked, other = sid(), sid()
    assert not await denylist.is_session_revoked(revoked)
    await denylist.revoke_sessions([revoked], ttl_seconds=60)
    assert await denylist.is_session_revoked(revoked)
    assert not await denylist.is_session_revoked(other)
    await denylist.revoke_sessions([], ttl_seconds=60)  # nothing to do is fine


async def test_the_mirror_is_built_from_the_database(kind: str, started: Start) -> None:
    """A process started after a revocation knows it, whatever the cache held (Redis restarted
    empty, or a fresh in-memory process)."""
    source = FakeRevocations()
    recent, old, live = sid(), sid(), sid()
    source.revoke(recent, at=time.time() - 10)
    source.revoke(old, at=time.time() - LIFETIME - 1)  # every token of it has expired
    denylist = await started(kind, source)
    await asyncio.wait_for(denylist.wait_synced(), 30)
    assert await denylist.is_session_revoked(recent)
    assert not await denylist.is_session_revoked(old)
    assert not await denylist.is_session_revoked(live)


async def test_unsynced_mirror_is_not_trusted(kind: str, started: Start) -> None:
    """While the database cannot be read the mirror may miss a revocation: it says so (the
    caller asks the database) instead of "not revoked" -- even with Redis up and empty."""
    source = FakeRevocations()
    source.down = True
    denylist = await started(kind, source, **({"retry_seconds": 0.05} if kind == "memory" else {}))
    await poll(lambda: _reads(source, 2))
    assert not denylist.synced
    with pytest.raises(CacheUnavailable):
        await denylist.is_session_revoked(sid())
    own = sid()
    await denylist.revoke_sessions([own], ttl_seconds=60)
    assert await denylist.is_session_revoked(own)  # this worker knows its own

    revoked = sid()
    status = FakeStatus({revoked})
    authenticate = Authenticate(JwtTokenCodec("s" * 32, 900), denylist, status)
    token, _ = JwtTokenCodec("s" * 32, 900).issue_access(
        user_id="u",
        session_id=revoked,
        role=Role.USER,
        scope=Scope.USER,
        amr=["pwd"],
        now=datetime.now(UTC),
    )
    with pytest.raises(Unauthenticated):
        await authenticate(token)

    source.down = False
    source.revoke(revoked)
    await asyncio.wait_for(denylist.wait_synced(), 30)  # heals without a restart
    assert await denylist.is_session_revoked(revoked)


async def _reads(source: FakeRevocations, at_least: int) -> bool:
    return source.reads >= at_least


async def test_a_revocation_outlives_every_token_of_its_session() -> None:
    """Revoked 0.9 s after issue, a token stays refused until its ``exp`` + leeway, and the
    entry goes soon after (memory stays bounded). The leeway is set once, in the codec."""
    now = [1_800_000_000.5]
    codec = JwtTokenCodec("s" * 32, 60)
    source = FakeRevocations()
    denylist = MemoryTokenDenylist(
        source, lifetime_seconds=codec.accepted_for_seconds, clock=lambda: now[0]
    )
    await denylist.start()
    try:
        await asyncio.wait_for(denylist.wait_synced(), 30)
        issued = now[0]
        _, ttl = codec.issue_access(
            user_id="u",
            session_id="s",
            role=Role.USER,
            scope=Scope.USER,
            amr=["pwd"],
            now=datetime.fromtimestamp(issued, UTC),
        )
        session = sid()
        now[0] = issued + 0.9
        issuer = SessionIssuer(None, codec, denylist, None, None)  # type: ignore[arg-type]
        await issuer.revoke_in_cache([session])
        accepted_until = int(issued) + ttl + 5  # PyJWT: exp + leeway
        now[0] = accepted_until - 0.01
        assert await denylist.is_session_revoked(session)
        now[0] = issued + 0.9 + codec.accepted_for_seconds + 0.1
        assert not await denylist.is_session_revoked(session)
    finally:
        await denylist.stop()


async def test_an_entry_read_from_the_database_lives_from_its_revocation(kind: str) -> None:
    now = [time.time()]
    source = FakeRevocations()
    session = sid()
    source.revoke(session, at=now[0] - 30)
    denylist: Any
    client = None
    if kind == "memory":
        denylist = MemoryTokenDenylist(source, lifetime_seconds=100, clock=lambda: now[0])
    else:
        client = make_redis(kind)
        denylist = RedisTokenDenylist(
            client, source, lifetime_seconds=100, resync_delay=0.05, clock=lambda: now[0]
        )
    await denylist.start()
    try:
        await asyncio.wait_for(denylist.wait_synced(), 30)
        now[0] += 69.8
        assert await denylist.is_session_revoked(session)
        now[0] += 0.4
        assert not await denylist.is_session_revoked(session)
    finally:
        await denylist.stop()
        if client is not None:
            await client.aclose()


def test_expiring_set_forgets_after_its_ttl() -> None:
    now = [100.0]
    keys = ExpiringSet(clock=lambda: now[0])
    keys.add("a", 10)
    assert "a" in keys
    now[0] += 9.9
    assert "a" in keys
    now[0] += 0.2
    assert "a" not in keys


@pytest.mark.redis
async def test_a_revocation_reaches_every_worker(redis_url: str, started: Start) -> None:
    source = FakeRevocations()
    first = await started(redis_url, source)
    second = await started(redis_url, source)
    await asyncio.wait_for(second.wait_synced(), 30)
    await asyncio.wait_for(first.wait_synced(), 30)
    session = sid()
    await first.revoke_sessions([session], ttl_seconds=60)  # only the message can tell it

    async def seen() -> bool:
        return bool(await second.is_session_revoked(session))

    await poll(seen)


@pytest.mark.redis
async def test_the_database_poll_catches_a_lost_message(redis_url: str, started: Start) -> None:
    """A revocation whose message never arrived reaches the worker within ``poll_seconds``."""
    source = FakeRevocations()
    worker = await started(redis_url, source, poll_seconds=0.2)
    await asyncio.wait_for(worker.wait_synced(), 30)
    session = sid()
    source.revoke(session)  # committed, never published
    started_at = time.monotonic()

    async def seen() -> bool:
        return bool(await worker.is_session_revoked(session))

    await poll(seen, deadline_seconds=5)
    assert time.monotonic() - started_at < 2


async def test_unreachable_redis_is_reported_not_guessed(started: Start) -> None:
    source = FakeRevocations()
    denylist = await started(f"redis://127.0.0.1:{free_port()}/0", source)
    with pytest.raises(CacheUnavailable):
        await denylist.is_session_revoked(sid())
    session = sid()
    await denylist.revoke_sessions([session], ttl_seconds=60)  # never raises
    assert await denylist.is_session_revoked(session)


@pytest.mark.slow
async def test_redis_restarted_empty_then_healed_from_the_database(started: Start) -> None:
    """Redis restarts empty: the worker stops trusting its mirror, asks the database meanwhile,
    and once Redis is back resubscribes and reads the database again, without a restart."""
    with own_redis() as redis:
        source = FakeRevocations()
        # The default resync delay, to measure the time to heal as deployed.
        worker = await started(redis.url, source, poll_seconds=300, resync_delay=0.5)
        await asyncio.wait_for(worker.wait_synced(), 30)
        redis.stop()
        await poll(lambda: _unsynced(worker), deadline_seconds=10)
        during = sid()
        source.revoke(during)  # committed while Redis was down: never published
        assert await answer(worker, during) is None  # the caller asks the database
        redis.start()
        back = time.monotonic()
        await asyncio.wait_for(worker.wait_synced(), 30)
        healed = time.monotonic() - back
        assert await worker.is_session_revoked(during)
        print(f"time to heal after Redis came back: {healed:.3f}s")


@pytest.mark.slow
async def test_a_silent_redis_is_noticed(started: Start) -> None:
    """A Redis that keeps the connection open and never answers (paused) is noticed by the
    heartbeat within a few seconds; meanwhile the database answers."""
    with own_redis() as redis:
        worker = await started(redis.url, FakeRevocations(), heartbeat_seconds=0.5)
        await asyncio.wait_for(worker.wait_synced(), 30)
        redis.pause()
        paused = time.monotonic()
        await poll(lambda: _unsynced(worker), deadline_seconds=10)
        noticed = time.monotonic() - paused
        assert await answer(worker, sid()) is None
        redis.resume()
        await asyncio.wait_for(worker.wait_synced(), 30)
        print(f"silence noticed after {noticed:.3f}s")


async def _unsynced(worker: Any) -> bool:
    return not worker.synced


def test_a_revocation_is_kept_past_the_leeway() -> None:
    codec = JwtTokenCodec("s" * 32, 900)
    assert codec.accepted_for_seconds == codec.access_ttl_seconds + 5 + 1
    assert timedelta(seconds=codec.accepted_for_seconds) > timedelta(minutes=15, seconds=5)


async def test_the_mirror_reads_the_sessions_table(
    kind: str, started: Start, engine: AsyncEngine
) -> None:
    """Built from the real sessions table (SQLite and PostgreSQL): a session revoked a moment
    ago is refused by a denylist that never heard of it; a live one is not."""
    revoked, live = (
        await seed_session(engine, refresh_hash="r"),
        await seed_session(engine, refresh_hash="l"),
    )
    async with engine.connect() as conn:
        await SqlSessionRepository(conn).revoke(revoked.id, datetime.now(UTC), "logout")
        await conn.commit()
    denylist = await started(kind, SqlSessionRevocations(engine))
    await asyncio.wait_for(denylist.wait_synced(), 30)
    assert await denylist.is_session_revoked(revoked.id)
    assert not await denylist.is_session_revoked(live.id)


@pytest.mark.redis
async def test_a_quiet_channel_on_a_live_redis_stays_synced(redis_url: str, started: Start) -> None:
    """The PONGs keep a quiet subscription trusted: no needless resync (and database reads)."""
    source = FakeRevocations()
    worker = await started(redis_url, source, heartbeat_seconds=0.1, poll_seconds=300)
    await asyncio.wait_for(worker.wait_synced(), 30)
    reads = source.reads
    until = time.monotonic() + 1.0  # ten heartbeats, three of which would drop a silent one
    while time.monotonic() < until:
        assert worker.synced
        await asyncio.sleep(0.02)
    assert source.reads == reads
