"""A TCP fault proxy on 127.0.0.1, and two misbehaving servers built on it, for the API tests
(in-process app) and the fault tier (real server process) alike.

``FaultProxy(target_host, target_port)`` listens on a free loopback port and forwards every
connection to the target. Its mode can change at any moment, and ``set_mode`` returns only once
the new mode is in force:

- ``pass``: bytes flow both ways. Coming back from ``refuse`` reopens the listener on the same
  port; coming back from ``blackhole`` resets the connections that lived through it (their
  streams lost bytes, as behind a firewall that dropped its state).
- ``reset``: every open connection is closed with an RST (``SO_LINGER`` 0) on both sides, and every
  new one is accepted and reset at once, so a client sees ``ECONNRESET``.
- ``refuse``: the listener is closed, so a connect fails with ``ECONNREFUSED``; open connections
  are reset.
- ``blackhole``: connections are accepted and kept open, whatever arrives from either side is
  read and dropped, nothing is forwarded: a client sees a peer that never answers.

A thread accepts, and two threads per connection pump bytes; each polls its socket with a short
timeout, so nothing blocks a mode change for longer than about ``POLL_SECONDS``. Threads, not the
test's event loop: the in-process test client blocks that loop while a request is served.

- ``black_hole()``: a proxy with no upstream, in ``blackhole`` from the start (a paused or
  partitioned server that accepts and never answers).
- ``Resetter``: accepts, reads the client's first bytes, then resets the connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "reset", "refuse", "blackhole"]
MODES: tuple[Mode, ...] = ("pass", "reset", "refuse", "blackhole")
POLL_SECONDS = 0.05
CHUNK = 64 * 1024


def _reset(sock: socket.socket | None) -> None:
    """Close ``sock`` with an RST instead of a FIN."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


class _Pair:
    """One client connection and, unless it was accepted into a black hole, its upstream."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket | None
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.blackholed = upstream is None  # lived through a black hole: reset on ``pass``
        self.stopping = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._done: set[str] = set()
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True),
        ]
        if upstream is not None:
            self.threads.append(
                threading.Thread(target=self._pump, args=(upstream, client, "down"), daemon=True)
            )

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket | None, name: str) -> None:
        while not self.stopping.is_set():
            try:
                readable, _, _ = select.select([source], [], [], POLL_SECONDS)
            except (OSError, ValueError):
                break
            if not readable:
                continue
            try:
                data = source.recv(CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                self.stop(rst=True)
                return
            if not data:  # end of stream: pass the half-close on
                if sink is not None and not self._swallowing():
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                with self._lock:
                    self._done.add(name)
                    both = len(self._done) == len(self.threads)
                if both or sink is None or self._swallowing():
                    self.stop(rst=False)
                return
            if sink is None or self._swallowing():
                continue  # swallowed
            if not self._send(sink, data):
                self.stop(rst=True)
                return

    def _swallowing(self) -> bool:
        return self.blackholed or self.proxy.mode == "blackhole"

    def _send(self, sink: socket.socket, data: bytes) -> bool:
        view = memoryview(data)
        while view and not self.stopping.is_set():
            try:
                _, writable, _ = select.select([], [sink], [], POLL_SECONDS)
                if writable:
                    sent = sink.send(view)
                    view = view[sent:]
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return False
        return not view

    def stop(self, *, rst: bool) -> None:
        """Stop both pumps, then close both sockets (with an RST when ``rst``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stopping.set()
        current = threading.current_thread()
        for thread in self.threads:
            if thread is not current and thread.is_alive():
                thread.join(timeout=5)
        closer = _reset if rst else _close
        closer(self.client)
        closer(self.upstream)
        self.proxy._forget(self)


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``(target_host, target_port)`` with switchable faults,
    starting in ``mode`` (``refuse``: the port is chosen, nothing listens on it yet)."""

    def __init__(
        self, target_host: str, target_port: int, *, port: int = 0, mode: Mode = "pass"
    ) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.accepted = 0  # connections accepted since the start, in any mode
        self._pairs: set[_Pair] = set()
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = self._listen(port)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        if mode != "pass":
            self.set_mode(mode)  # before anyone knows the port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        return listener

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode``; in force when this returns."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        with self._lock:
            previous, self.mode = self.mode, mode
            pairs = list(self._pairs)
            if mode == "refuse" and self._listener is not None:
                # shutdown first: a close alone leaves it listening while the accept thread's
                # select() still holds it
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                _close(self._listener)
                self._listener = None
            if mode != "refuse" and self._listener is None:
                self._listener = self._listen(self.port)
            if mode == "blackhole":
                for pair in pairs:
                    pair.blackholed = True
        if mode in {"reset", "refuse"}:
            for pair in pairs:
                pair.stop(rst=True)
        elif mode == "pass" and previous == "blackhole":
            for pair in pairs:
                if pair.blackholed:
                    pair.stop(rst=True)

    def connections(self) -> int:
        """How many connections are open through the proxy now."""
        with self._lock:
            return len(self._pairs)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stopped.wait(POLL_SECONDS)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], POLL_SECONDS)
                if not readable:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue  # the listener was closed under us (``refuse``)
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            mode = self.mode
        if mode in {"reset", "refuse"}:
            _reset(client)
            return
        upstream: socket.socket | None = None
        if mode == "pass":
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)  # the target itself is down: the client sees it as such
                return
            upstream.setblocking(False)
        client.setblocking(False)
        pair = _Pair(self, client, upstream)
        with self._lock:
            self._pairs.add(pair)
        pair.start()

    def close(self) -> None:
        """Stop accepting and reset every connection."""
        self._stopped.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._listener is not None:
                _close(self._listener)
                self._listener = None
            pairs = list(self._pairs)
        for pair in pairs:
            pair.stop(rst=True)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def black_hole() -> FaultProxy:
    """A server that accepts and reads, never answers and never closes: a proxy whose target is a
    closed port (never contacted while in ``blackhole``). ``accepted`` counts its connections."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port: int = probe.getsockname()[1]
    return FaultProxy("127.0.0.1", closed_port, mode="blackhole")


class Resetter(FaultProxy):
    """Accepts, reads the client's first bytes (up to 64, or until it has waited a second), then
    closes the connection with an RST: a server that dies under a request it has begun to read.
    Its mode is not used."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0, mode="reset")

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
        threading.Thread(target=self._read_then_reset, args=(client,), daemon=True).start()

    @staticmethod
    def _read_then_reset(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.settimeout(1)
            client.recv(64)
        _reset(client)
