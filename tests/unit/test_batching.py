"""Batcher: concurrent calls share batches, each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from orbsurv.adapters.batching import Batcher


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


class Recorder:
    """Runs batches that wait on ``release``; records each batch and the most at once."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    async def run(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(items)
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


async def test_calls_arriving_meanwhile_share_the_next_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[str, str] = Batcher(recorder.run, max_batch=10, name="test")
    calls = [asyncio.create_task(batcher.submit(f"item{n}")) for n in range(6)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await asyncio.gather(*calls) == [f"ITEM{n}" for n in range(6)]
    assert recorder.batches == [["item0"], [f"item{n}" for n in range(1, 6)]]
    await batcher.close()


async def test_no_more_batches_at_once_than_allowed() -> None:
    recorder = Recorder()
    batcher: Batcher[str, str] = Batcher(recorder.run, max_batch=2, name="test", concurrency=2)
    calls = [asyncio.create_task(batcher.submit(f"item{n}")) for n in range(9)]
    await until(lambda: recorder.running == 2)
    await asyncio.sleep(0)  # a third would have started by now
    recorder.release.set()
    await asyncio.gather(*calls)
    assert recorder.most == 2
    assert sorted(item for batch in recorder.batches for item in batch) == sorted(
        f"item{n}" for n in range(9)
    )
    assert all(len(batch) <= 2 for batch in recorder.batches)


async def test_an_item_that_conflicts_with_a_running_batch_waits_for_its_end() -> None:
    recorder = Recorder()

    def fits(item: str, others: list[str]) -> bool:
        return item not in others

    batcher: Batcher[str, str] = Batcher(
        recorder.run, max_batch=10, name="test", concurrency=3, fits=fits
    )
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(0)
    again = asyncio.create_task(batcher.submit("a"))
    other = asyncio.create_task(batcher.submit("b"))
    await until(lambda: recorder.running == 2)
    await asyncio.sleep(0)
    assert recorder.batches == [["a"], ["b"]]  # the second "a" waits: "a" is running
    recorder.release.set()
    assert await asyncio.gather(first, again, other) == ["A", "A", "B"]
    assert recorder.batches == [["a"], ["b"], ["a"]]


async def test_each_caller_gets_its_own_exception_and_the_batcher_goes_on() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher: Batcher[str, str] = Batcher(recorder.run, max_batch=10, name="test")
    results = await asyncio.gather(
        batcher.submit("ok"), batcher.submit("bad"), return_exceptions=True
    )
    assert results[0] == "OK"
    assert isinstance(results[1], ValueError)

    async def broken(items: list[str]) -> list[str | BaseException]:
        raise ConnectionError("down")

    failing: Batcher[str, str] = Batcher(broken, max_batch=10, name="test")
    with pytest.raises(ConnectionError):
        await failing.submit("x")
    with pytest.raises(ConnectionError):  # the next call is tried again, not stuck
        await failing.submit("y")
