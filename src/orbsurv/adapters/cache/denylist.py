"""The access-token denylist: a mirror of the database in every worker, kept fresh by Redis.

The sessions table is the source of truth: every revocation is committed there before anyone is
told. Each worker keeps an in-process mirror (``RevocationMirror``) so that an authenticated
request costs no round trip. The mirror is built from the database at start and again after
every Redis (re)subscribe; a revocation is then PUBLISHed on a channel for the other workers to
add at once. Redis carries only that broadcast, so a Redis that restarts empty loses nothing.

While the subscription is not in place (starting, Redis down or silent, the database read after
a resubscribe not done) the mirror may miss a revocation, so ``is_session_revoked`` raises
``CacheUnavailable`` for every session it does not hold and the caller asks the database. As a
backstop the mirror also reads the newest revocations from the database every
``poll_seconds``: a revocation whose message never reached a worker (its subscription silently
cut) is honoured there within that bound, before the heartbeat notices the silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from orbsurv.adapters.cache.follower import ChannelFollower
from orbsurv.adapters.cache.memory import RevocationMirror
from orbsurv.adapters.cache.redis import REDIS_FAULTS
from orbsurv.application.identity.ports import CacheUnavailable, SessionRevocations

logger = logging.getLogger(__name__)

CHANNEL = "orbsurv:deny"


class RedisTokenDenylist:
    def __init__(
        self,
        redis: Redis,
        revocations: SessionRevocations,
        *,
        lifetime_seconds: float,
        poll_seconds: float = 5.0,
        resync_delay: float = 0.5,
        heartbeat_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._mirror = RevocationMirror(revocations, lifetime_seconds=lifetime_seconds, clock=clock)
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._follower = ChannelFollower(
            redis,
            CHANNEL,
            on_message=self._apply,
            on_synced=self._load,
            resync_delay=resync_delay,
            heartbeat_seconds=heartbeat_seconds,
        )

    @property
    def synced(self) -> bool:
        """Subscribed, and the mirror read from the database since."""
        return self._follower.synced

    async def start(self) -> None:
        self._follower.start()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="denylist:poll")

    async def wait_synced(self) -> None:
        """Return once the mirror holds every current revocation."""
        await self._follower.wait_synced()

    async def stop(self) -> None:
        if self._publishing:
            await asyncio.wait(set(self._publishing), timeout=2.0)
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait({self._poller}, timeout=2.0)
            self._poller = None
        await self._follower.stop()

    async def revoke_sessions(self, session_ids: Sequence[str], ttl_seconds: int) -> None:
        """This worker refuses the sessions at once; the message to the others is sent in the
        background, so a silent Redis never delays the caller's answer (the revocation is
        already committed, and a message that is lost is read from the database)."""
        if not session_ids:
            return
        self._mirror.add(session_ids, ttl_seconds)
        message = f"{ttl_seconds} {' '.join(session_ids)}"
        task = asyncio.create_task(self._publish(message, len(session_ids)))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, message: str, count: int) -> None:
        try:
            await self._redis.publish(CHANNEL, message)
        except REDIS_FAULTS:
            logger.warning("could not publish %d revocation(s); the database has them", count)

    async def is_session_revoked(self, session_id: str) -> bool:
        if session_id in self._mirror:
            return True
        if not self._follower.synced:
            raise CacheUnavailable("the denylist mirror is not in step with the database")
        return False

    async def _load(self) -> None:
        await self._mirror.load()
        logger.info("denylist mirror read from the database")

    async def _poll(self) -> None:
        await asyncio.sleep(self._poll_seconds)
        await self._mirror.poll(self._poll_seconds)

    def _apply(self, data: bytes) -> None:
        ttl, _, ids = data.decode().partition(" ")
        self._mirror.add(ids.split(), float(ttl))
