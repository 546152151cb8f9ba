"""The access-token denylist on Redis, mirrored in every worker.

Revocations are written to Redis (a key per session, expiring with the longest access token it
could still have) and published on a channel. Each worker keeps an in-process mirror: it
subscribes, loads every current key, and from then on answers from memory, so an authenticated
request costs no network round trip. While the mirror is (re)syncing it asks Redis directly;
when Redis does not answer it raises ``CacheUnavailable`` and the caller asks the database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbsurv.adapters.cache.follower import ChannelFollower
from orbsurv.adapters.cache.memory import ExpiringSet
from orbsurv.application.identity.ports import CacheUnavailable

logger = logging.getLogger(__name__)

PREFIX = "orbsurv:deny:sid:"
CHANNEL = "orbsurv:deny"


class RedisTokenDenylist:
    def __init__(self, redis: Redis, *, resync_delay: float = 0.5) -> None:
        self._redis = redis
        self._mirror = ExpiringSet()
        self._follower = ChannelFollower(
            redis,
            CHANNEL,
            on_message=self._apply,
            on_synced=self._load_snapshot,
            resync_delay=resync_delay,
        )

    @property
    def synced(self) -> bool:
        return self._follower.synced

    async def start(self) -> None:
        self._follower.start()

    async def wait_synced(self) -> None:
        """Return once the mirror holds every current revocation."""
        await self._follower.wait_synced()

    async def stop(self) -> None:
        await self._follower.stop()

    async def revoke_sessions(self, session_ids: Sequence[str], ttl_seconds: int) -> None:
        if not session_ids:
            return
        for session_id in session_ids:
            self._mirror.add(session_id, ttl_seconds)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in session_ids:
                    pipe.set(f"{PREFIX}{session_id}", b"1", ex=ttl_seconds)
                pipe.publish(CHANNEL, f"{ttl_seconds} {' '.join(session_ids)}")
                await pipe.execute()
        except (RedisError, OSError):
            # The sessions table already says "revoked"; workers that cannot see Redis ask it.
            logger.warning("could not publish %d revocation(s)", len(session_ids), exc_info=True)

    async def is_session_revoked(self, session_id: str) -> bool:
        if session_id in self._mirror:
            return True
        if self._follower.synced:
            return False
        try:
            return bool(await self._redis.exists(f"{PREFIX}{session_id}"))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable("Redis did not answer") from exc

    async def _load_snapshot(self) -> None:
        keys = [key async for key in self._redis.scan_iter(match=f"{PREFIX}*", count=1000)]
        if keys:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(key)
                ttls = await pipe.execute()
            for key, ttl_ms in zip(keys, ttls, strict=True):
                if ttl_ms and ttl_ms > 0:
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    self._mirror.add(name.removeprefix(PREFIX), ttl_ms / 1000)
        logger.info("denylist mirror synced (%d revoked sessions)", len(keys))

    def _apply(self, data: bytes) -> None:
        ttl, _, ids = data.decode().partition(" ")
        for session_id in ids.split():
            self._mirror.add(session_id, float(ttl))
