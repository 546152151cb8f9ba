"""Small loopback servers that misbehave on purpose, run in the test's own event loop.

* ``BlackHole``: accepts connections and never answers (a paused or partitioned server).
* ``Resetter``: accepts, reads what the client sends first, then resets the connection (RST).
* ``FaultProxy``: a TCP proxy to a real server that can reset every open connection, refuse new
  ones with a reset, or stop forwarding while keeping connections open (packets dropped).

Each runs its own event loop in a thread of its own (the in-process test client runs the app in
another thread and blocks the test's loop while a request is served), binds 127.0.0.1 on a port
the kernel chooses, and is stopped by ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Literal


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Server:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _run(self, step: Callable[[], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            return await step()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(15)

    def start(self) -> None:
        self._thread.start()
        self._run(self._start)

    def close(self) -> None:
        self._run(self._aclose)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self.handle(reader, writer)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


class BlackHole(_Server):
    """Accepts and reads, never answers, never closes."""

    accepted = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass


class Resetter(_Server):
    """Reads the client's first bytes, then resets the connection."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read(64)
        _reset(writer)


class FaultProxy(_Server):
    """Forwards to ``upstream_port`` while ``mode == "pass"``; ``"blackhole"`` keeps every
    connection open and forwards nothing (new ones are accepted and never answered);
    ``"refuse"`` resets new connections. ``reset_all`` resets the open ones."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.mode: Literal["pass", "blackhole", "refuse"] = "pass"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            _reset(writer)
            return
        if self.mode == "blackhole":
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.append(up_writer)
        for source, target in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await source.read(65536):
                if self.mode == "blackhole":
                    continue  # dropped on the floor; the connection stays open
                target.write(data)
                await target.drain()
            target.close()

    def reset_all(self) -> None:
        async def reset() -> None:
            for writer in self._writers:
                _reset(writer)
            self._writers.clear()

        self._run(reset)
