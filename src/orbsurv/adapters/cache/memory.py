"""In-process twins of the cache adapters: one process, no Redis (the embedded default)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from orbsurv.application.identity.ports import RateDecision


class ExpiringSet:
    """Keys that disappear after their time to live; pruned as it grows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._expiry: dict[str, float] = {}
        self._clock = clock
        self._prune_at = 1024

    def add(self, key: str, ttl_seconds: float) -> None:
        now = self._clock()
        self._expiry[key] = max(self._expiry.get(key, 0.0), now + ttl_seconds)
        if len(self._expiry) >= self._prune_at:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
            self._prune_at = max(1024, 2 * len(self._expiry))

    def __contains__(self, key: str) -> bool:
        expires = self._expiry.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expiry[key]
            return False
        return True

    def clear(self) -> None:
        self._expiry.clear()


class MemoryTokenDenylist:
    def __init__(self) -> None:
        self._revoked = ExpiringSet()

    async def revoke_sessions(self, session_ids: Sequence[str], ttl_seconds: int) -> None:
        for session_id in session_ids:
            self._revoked.add(session_id, ttl_seconds)

    async def is_session_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._clock = clock

    def _current(self, key: str) -> tuple[int, float]:
        count, expires = self._windows.get(key, (0, 0.0))
        if expires <= self._clock():
            self._windows.pop(key, None)
            return 0, 0.0
        return count, expires

    def _retry_after(self, expires: float) -> int:
        return max(1, math.ceil(expires - self._clock()))

    async def hit(
        self, key: str, *, limit: int, window_seconds: int, block_seconds: int | None = None
    ) -> RateDecision:
        count, expires = self._current(key)
        now = self._clock()
        count += 1
        if count == 1:
            expires = now + window_seconds
        if block_seconds and count == limit:
            expires = now + block_seconds
        self._windows[key] = (count, expires)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        return RateDecision(count <= limit, count, self._retry_after(expires))

    async def peek(self, key: str, *, limit: int) -> RateDecision:
        count, expires = self._current(key)
        return RateDecision(count < limit, count, self._retry_after(expires) if count else 0)

    async def peek_many(self, checks: Sequence[tuple[str, int]]) -> list[RateDecision]:
        return [await self.peek(key, limit=limit) for key, limit in checks]

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    async def give_back(self, key: str) -> None:
        count, expires = self._current(key)
        if count > 0:
            self._windows[key] = (count - 1, expires)
