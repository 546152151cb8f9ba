"""Following a Redis channel from every worker, robustly.

A ``ChannelFollower`` subscribes, then calls ``on_synced`` (load a snapshot, or drop a local cache)
and from then on hands every message to ``on_message``. While it is not synced -- starting,
reconnecting, Redis gone -- ``synced`` is false and its owner must not trust local state.

A subscription that goes quiet is not trusted either: the follower PINGs on its own connection
every ``heartbeat_seconds`` and, when nothing (not even the PONG) has come back for three of
them, drops the connection and resyncs. A Redis that stops answering with the connection open
(packets dropped) would otherwise look like a quiet channel for as long as TCP keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from orbsurv.adapters.cache.redis import REDIS_FAULTS
from orbsurv.application.faults import DEPENDENCY_FAULTS, log_failure

logger = logging.getLogger(__name__)
#: The channel is lost to Redis or, while resyncing, to the database.
FAULTS = (*DEPENDENCY_FAULTS, *REDIS_FAULTS)


class ChannelFollower:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        *,
        on_message: Callable[[bytes], None],
        on_synced: Callable[[], Awaitable[None]],
        resync_delay: float = 0.5,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._heartbeat = heartbeat_seconds
        self._channel = channel
        self._on_message = on_message
        self._on_synced = on_synced
        self._resync_delay = resync_delay
        self._synced = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._follow(), name=f"follow:{self._channel}")

    async def stop(self) -> None:
        """Bounded even if the client swallows a cancellation mid-reconnect."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=2.0)
            if not done:
                logger.warning("%s follower did not stop within 2s; abandoning it", self._channel)
            self._task = None

    async def _follow(self) -> None:
        while not self._stopping:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                await self._on_synced()
                self._synced.set()
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                if self._synced.is_set():
                    log_failure(
                        logger,
                        exc,
                        "lost Redis channel %s; resyncing",
                        self._channel,
                        faults=FAULTS,
                    )
                self._synced.clear()
                await asyncio.sleep(self._resync_delay)
            finally:
                self._synced.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    logger.debug("closing the pubsub connection failed", exc_info=True)

    async def _listen(self, pubsub: PubSub) -> None:
        """Hand messages over until stopped; raise ``ConnectionError`` once Redis is silent for
        three heartbeats (the PONGs to our PINGs count as answers)."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        ping_at = heard + self._heartbeat
        while not self._stopping:
            message = await pubsub.get_message(timeout=min(1.0, self._heartbeat))
            now = loop.time()
            if message is not None:
                heard = now
                if message.get("type") == "message":
                    self._on_message(message["data"])
            if now - heard > 3 * self._heartbeat:
                raise ConnectionError(f"Redis has not answered for {now - heard:.1f}s")
            if now >= ping_at:
                await pubsub.ping()
                ping_at = now + self._heartbeat
