"""The access-token denylist on Redis, mirrored in every worker.

Revocations are written to Redis (a key per session, expiring with the longest access token it
could still have) and published on a channel. Each worker keeps an in-process mirror: it
subscribes, loads every current key, and from then on answers from memory, so an authenticated
request costs no network round trip. While the mirror is (re)syncing it asks Redis directly;
when Redis does not answer it raises ``CacheUnavailable`` and the caller asks the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbsurv.adapters.cache.memory import ExpiringSet
from orbsurv.application.identity.ports import CacheUnavailable

logger = logging.getLogger(__name__)

PREFIX = "orbsurv:deny:sid:"
CHANNEL = "orbsurv:deny"


class RedisTokenDenylist:
    def __init__(self, redis: Redis, *, resync_delay: float = 0.5) -> None:
        self._redis = redis
        self._mirror = ExpiringSet()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_delay = resync_delay
        self._stopping = False

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="denylist-mirror")

    async def wait_synced(self) -> None:
        """Return once the mirror holds every current revocation."""
        await self._synced.wait()

    async def stop(self) -> None:
        """Stop following; bounded even if the client swallows a cancellation mid-reconnect."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=2.0)
            if not done:
                logger.warning("denylist mirror did not stop within 2s; abandoning it")
            self._task = None

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
            logger.warning(
                "could not publish %d revocation(s) to Redis", len(session_ids), exc_info=True
            )

    async def is_session_revoked(self, session_id: str) -> bool:
        if session_id in self._mirror:
            return True
        if self._synced.is_set():
            return False
        try:
            return bool(await self._redis.exists(f"{PREFIX}{session_id}"))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable("Redis did not answer") from exc

    async def _load_snapshot(self) -> int:
        keys = [key async for key in self._redis.scan_iter(match=f"{PREFIX}*", count=1000)]
        if not keys:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            ttls = await pipe.execute()
        for key, ttl_ms in zip(keys, ttls, strict=True):
            if ttl_ms and ttl_ms > 0:
                name = key.decode() if isinstance(key, bytes) else str(key)
                self._mirror.add(name.removeprefix(PREFIX), ttl_ms / 1000)
        return len(keys)

    def _apply(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        ttl, _, ids = text.partition(" ")
        for session_id in ids.split():
            self._mirror.add(session_id, float(ttl))

    async def _follow(self) -> None:
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                loaded = await self._load_snapshot()
                self._synced.set()
                logger.info("denylist mirror synced (%d revoked sessions)", loaded)
                while not self._stopping:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._synced.is_set():
                    logger.warning(
                        "denylist mirror lost Redis; checking Redis directly", exc_info=True
                    )
                self._synced.clear()
                await asyncio.sleep(self._resync_delay)
            finally:
                self._synced.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
