"""GetProfile: concurrent cache misses for one user share one read, per cache ticket."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orbsurv.adapters.cache.profiles import MemoryProfileCache
from orbsurv.application.identity.profile import GetProfile
from orbsurv.domain.identity import Principal, Role, Scope, User

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADA = User(
    id="u1",
    email="ada@example.com",
    password_hash="x",
    role=Role.USER,
    created_at=T0,
    updated_at=T0,
)
PRINCIPAL = Principal(user_id="u1", role=Role.USER, scope=Scope.USER, session_id="s1", amr=())


class GatedLookup:
    """Answers only when the test opens the gate, counting the reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()

    async def get(self, user_id: str) -> User | None:
        self.reads += 1
        await self.gate.wait()
        return ADA if user_id == ADA.id else None


async def test_concurrent_misses_share_one_read_and_fill_the_cache() -> None:
    lookup, cache = GatedLookup(), MemoryProfileCache()
    profile = GetProfile(lookup, cache)
    waiting = [asyncio.create_task(profile(PRINCIPAL)) for _ in range(20)]
    await asyncio.sleep(0)  # let every request reach the read
    lookup.gate.set()
    assert [user.id for user in await asyncio.gather(*waiting)] == ["u1"] * 20
    assert lookup.reads == 1
    assert cache.lookup("u1")[0] == ADA
    await profile(PRINCIPAL)
    assert lookup.reads == 1  # served from the cache


async def test_a_request_after_an_invalidation_reads_again() -> None:
    lookup, cache = GatedLookup(), MemoryProfileCache()
    profile = GetProfile(lookup, cache)
    before = asyncio.create_task(profile(PRINCIPAL))
    await asyncio.sleep(0)
    await cache.invalidate(["u1"])  # the user changed while the first read was in flight
    after = asyncio.create_task(profile(PRINCIPAL))
    await asyncio.sleep(0)
    lookup.gate.set()
    await asyncio.gather(before, after)
    assert lookup.reads == 2
    assert cache.lookup("u1")[0] == ADA  # stored by the read that began after the change


async def test_one_caller_cancelled_does_not_cancel_the_others() -> None:
    lookup, cache = GatedLookup(), MemoryProfileCache()
    profile = GetProfile(lookup, cache)
    leaving, staying = (asyncio.create_task(profile(PRINCIPAL)) for _ in range(2))
    await asyncio.sleep(0)
    leaving.cancel()
    lookup.gate.set()
    assert (await staying).id == "u1"
    assert lookup.reads == 1
