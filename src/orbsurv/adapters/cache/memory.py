"""In-process twins of the cache adapters: one process, no Redis (the embedded default), and
the revocation mirror every denylist keeps."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from orbsurv.application.faults import log_failure
from orbsurv.application.identity.ports import (
    CacheUnavailable,
    RateDecision,
    SessionRevocations,
)

logger = logging.getLogger(__name__)


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


class RevocationMirror:
    """Revoked session ids, each kept until the last moment one of its access tokens could be
    accepted, built from the sessions table (the source of truth).

    ``load`` reads every session revoked within ``lifetime_seconds`` (``TokenCodec.
    accepted_for_seconds``) plus ``OVERLAP_SECONDS``; ``catch_up`` reads those revoked since the
    previous read began, less ``OVERLAP_SECONDS``. The overlap covers a revocation stamped a
    moment before the transaction that wrote it committed, and clock skew between processes. A
    row's entry lives until ``revoked_at + lifetime_seconds``. Reads only add: nothing is
    forgotten before its time, and a read that fails leaves the mark where it was, so the next
    one catches up. ``clock`` is wall-clock seconds since the epoch (as ``revoked_at``).
    """

    OVERLAP_SECONDS = 60.0

    def __init__(
        self,
        source: SessionRevocations,
        *,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._revoked = ExpiringSet(clock)
        self._mark: float | None = None  # when the last successful read began
        self._failing = False

    @property
    def loaded(self) -> bool:
        """Whether one read of the database has succeeded."""
        return self._mark is not None

    def add(self, session_ids: Iterable[str], ttl_seconds: float) -> None:
        for session_id in session_ids:
            self._revoked.add(session_id, ttl_seconds)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._revoked

    async def load(self) -> None:
        """Read every revocation that can still matter; raise ``DependencyUnavailable``."""
        await self._read(self._clock() - self._lifetime - self.OVERLAP_SECONDS)

    async def catch_up(self) -> None:
        """Read the revocations since the last read (all of them before the first one)."""
        if self._mark is None:
            await self.load()
        else:
            await self._read(self._mark - self.OVERLAP_SECONDS)

    async def poll(self, every_seconds: float) -> None:
        """``catch_up`` every ``every_seconds`` until cancelled; a failure is logged once per
        outage and retried at the next turn."""
        while True:
            try:
                await self.catch_up()
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                if not self._failing:
                    log_failure(logger, exc, "could not read revocations from the database")
                self._failing = True
            else:
                if self._failing:
                    logger.info("revocations read from the database again")
                self._failing = False
            await asyncio.sleep(every_seconds)

    async def _read(self, since: float) -> None:
        started = self._clock()
        rows = await self._source.revoked_since(datetime.fromtimestamp(since, UTC))
        now = self._clock()
        for row in rows:
            ttl = row.revoked_at.timestamp() + self._lifetime - now
            if ttl > 0:
                self._revoked.add(row.session_id, ttl)
        self._mark = started if self._mark is None else max(self._mark, started)


class MemoryTokenDenylist:
    """The denylist of one process with no Redis (the embedded default).

    Its mirror is read from the database when it starts, retried every ``retry_seconds`` until
    the database answers; until then ``is_session_revoked`` raises ``CacheUnavailable`` and the
    caller asks the database. Revocations made in this process are added as they happen: without
    Redis one process serves the API (``check_worker_count``), so none comes from elsewhere. With
    ``poll_seconds`` it also reads the newest revocations from the database that often (off by
    default).
    """

    def __init__(
        self,
        revocations: SessionRevocations,
        *,
        lifetime_seconds: float,
        poll_seconds: float | None = None,
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mirror = RevocationMirror(revocations, lifetime_seconds=lifetime_seconds, clock=clock)
        self._poll_seconds = poll_seconds
        self._retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    @property
    def synced(self) -> bool:
        return self._mirror.loaded

    async def start(self) -> None:
        """Read the mirror once (the process starts in step when the database answers); on a
        failure, and for the polls, carry on in the background."""
        if self._task is not None:
            return
        try:
            await self._mirror.load()
        except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
            log_failure(logger, exc, "could not read revocations; asking the database per request")
        else:
            self._loaded.set()
            if self._poll_seconds is None:
                return
        self._task = asyncio.create_task(self._run(), name="denylist:database")

    async def wait_synced(self) -> None:
        await self._loaded.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2.0)
            self._task = None

    async def _run(self) -> None:
        while not self._mirror.loaded:
            await asyncio.sleep(self._retry_seconds)
            try:
                await self._mirror.load()
            except Exception:
                logger.debug("still cannot read revocations", exc_info=True)
        if not self._loaded.is_set():
            logger.info("revocations read from the database; answering from memory")
        self._loaded.set()
        if self._poll_seconds is not None:
            await asyncio.sleep(self._poll_seconds)
            await self._mirror.poll(self._poll_seconds)

    async def revoke_sessions(self, session_ids: Sequence[str], ttl_seconds: int) -> None:
        self._mirror.add(session_ids, ttl_seconds)

    async def is_session_revoked(self, session_id: str) -> bool:
        if session_id in self._mirror:
            return True
        if not self._mirror.loaded:
            raise CacheUnavailable("the revocation mirror has not been read yet")
        return False


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
