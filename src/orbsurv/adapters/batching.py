"""Batches of concurrent calls: one round trip for the calls that arrive while others are in
flight.

The first call after a quiet spell goes out at once (there is no timer); the calls that arrive
while the allowed number of batches are in flight wait and go out together in the next one.
Each caller gets its own result, or its own exception, and only once its batch is done. A caller
that goes away does not take its item with it: the batch still runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    outcome: asyncio.Future[R]


class Batcher(Generic[T, R]):
    """``await batcher.submit(item)``: ``run(batch)`` returns one result or exception per item,
    in order. Up to ``concurrency`` batches run at once, each of at most ``max_batch`` items.
    ``fits(item, others)`` may keep an item out of a batch: ``others`` are the items of the
    batch being formed and of the batches still running, and an item that does not fit waits
    for a later batch, keeping its place in the queue. Create one per process and event loop;
    ``close()`` waits until every submitted item is answered."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        *,
        max_batch: int,
        name: str,
        concurrency: int = 1,
        fits: Callable[[T, list[T]], bool] | None = None,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._name = name
        self._concurrency = concurrency
        self._fits = fits
        self._queue: deque[_Pending[T, R]] = deque()
        self._running: dict[asyncio.Task[None], list[T]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Left by an event loop that has ended: nothing of it can be answered any more.
            self._queue.clear()
            self._running.clear()
            self._loop = loop
        outcome: asyncio.Future[R] = loop.create_future()
        # Retrieved here too, so a caller that went away leaves no "never retrieved" warning.
        outcome.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append(_Pending(item, outcome))
        self._start_batches()
        return await asyncio.shield(outcome)

    async def close(self) -> None:
        while self._running and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start_batches(self) -> None:
        assert self._loop is not None
        while self._queue and len(self._running) < self._concurrency:
            batch = self._take()
            if not batch:
                return  # all that waits conflicts with a running batch: its end starts more
            task = self._loop.create_task(self._answer(batch), name=self._name)
            self._running[task] = [pending.item for pending in batch]
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if task.get_loop() is self._loop and not self._loop.is_closed():
            self._start_batches()

    def _take(self) -> list[_Pending[T, R]]:
        batch: list[_Pending[T, R]] = []
        others = [item for items in self._running.values() for item in items]
        later: list[_Pending[T, R]] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if self._fits is None or self._fits(pending.item, others):
                batch.append(pending)
                others.append(pending.item)
            else:
                later.append(pending)
        self._queue.extendleft(reversed(later))
        return batch

    async def _answer(self, batch: list[_Pending[T, R]]) -> None:
        try:
            results = await self._run([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(batch)}")
        except BaseException as exc:
            for pending in batch:
                if not pending.outcome.done() and not pending.outcome.get_loop().is_closed():
                    pending.outcome.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: the callers were told
            return
        for pending, result in zip(batch, results, strict=True):
            if pending.outcome.done():
                continue
            if isinstance(result, BaseException):
                pending.outcome.set_exception(result)
            else:
                pending.outcome.set_result(result)
