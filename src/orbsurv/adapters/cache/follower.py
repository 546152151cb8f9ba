"""Following a Redis channel from every worker, robustly.

A ``ChannelFollower`` subscribes, then calls ``on_synced`` (load a snapshot, or drop a local cache)
and from then on hands every message to ``on_message``. While it is not synced -- starting,
reconnecting, Redis gone -- ``synced`` is false and its owner must not trust local state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

logger = logging.getLogger(__name__)


class ChannelFollower:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        *,
        on_message: Callable[[bytes], None],
        on_synced: Callable[[], Awaitable[None]],
        resync_delay: float = 0.5,
    ) -> None:
        self._redis = redis
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
                while not self._stopping:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._synced.is_set():
                    logger.warning("lost Redis channel %s; resyncing", self._channel, exc_info=True)
                self._synced.clear()
                await asyncio.sleep(self._resync_delay)
            finally:
                self._synced.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    logger.debug("closing the pubsub connection failed", exc_info=True)
