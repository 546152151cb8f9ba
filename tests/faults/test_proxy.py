"""The fault proxy itself: each mode does what the fault tier relies on, and ``pass`` heals; and
the black hole and the resetter built on it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fault_proxy import FaultProxy, Resetter, black_hole


@pytest.fixture
def echo() -> Iterator[int]:
    """A loopback echo server; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(timeout=5)
    listener.close()


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo) as proxy:
        yield proxy


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def round_trip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def is_reset(sock: socket.socket, payload: bytes = b"x") -> bool:
    """Whether the peer of ``sock`` reset it (or closed it without answering)."""
    try:
        sock.sendall(payload)
        return not sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one socket buffer
    with connect(proxy) as sock:
        assert round_trip(sock, payload) == payload


def test_reset_resets_open_and_new_connections(proxy: FaultProxy) -> None:
    sock = connect(proxy)
    assert round_trip(sock, b"hello") == b"hello"
    proxy.set_mode("reset")
    with pytest.raises(ConnectionResetError):
        sock.recv(1)
    sock.close()
    try:
        fresh = connect(proxy)
    except ConnectionResetError:
        pass  # reset before the connect call even returned
    else:
        with fresh:
            assert is_reset(fresh)
    proxy.set_mode("pass")
    with connect(proxy) as healed:
        assert round_trip(healed, b"again") == b"again"


def test_refuse_closes_the_listener_and_pass_reopens_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    proxy.set_mode("pass")
    assert proxy.port == port
    with connect(proxy) as sock:
        assert round_trip(sock, b"back") == b"back"


def test_blackhole_accepts_and_never_answers(proxy: FaultProxy) -> None:
    open_before = connect(proxy)
    assert round_trip(open_before, b"one") == b"one"
    proxy.set_mode("blackhole")
    started = time.monotonic()
    with connect(proxy) as sock:  # the connect itself succeeds
        sock.settimeout(0.5)
        sock.sendall(b"anyone there?" * 1000)
        with pytest.raises(TimeoutError):
            sock.recv(1)
    open_before.settimeout(0.5)
    open_before.sendall(b"two")
    with pytest.raises(TimeoutError):
        open_before.recv(1)
    assert time.monotonic() - started < 5
    proxy.set_mode("pass")
    assert is_reset(open_before, b"")  # it lost bytes: it is reset, not resumed
    open_before.close()
    with connect(proxy) as sock:
        assert round_trip(sock, b"healed") == b"healed"


def test_mode_changes_do_not_leak_connections(proxy: FaultProxy) -> None:
    socks = [connect(proxy) for _ in range(5)]
    for sock in socks:
        assert round_trip(sock, b"x") == b"x"
    assert proxy.connections() == 5
    proxy.set_mode("reset")
    assert proxy.connections() == 0
    for sock in socks:
        sock.close()
    proxy.set_mode("pass")
    with connect(proxy) as sock:
        assert round_trip(sock, b"y") == b"y"
    deadline = time.monotonic() + 5
    while proxy.connections() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.connections() == 0  # a client's FIN closes its pair


def test_a_black_hole_accepts_counts_and_never_answers() -> None:
    with black_hole() as hole, connect(hole) as sock:
        sock.settimeout(0.5)
        sock.sendall(b"anyone there?")
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert hole.accepted == 1
        assert hole.connections() == 1  # kept open


def test_a_resetter_reads_then_resets() -> None:
    with Resetter() as resetter, connect(resetter) as sock:
        sock.sendall(b"zINSTREAM\0")
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
        assert resetter.accepted == 1


def test_a_proxy_can_start_refusing(echo: int) -> None:
    with FaultProxy("127.0.0.1", echo, mode="refuse") as gate:
        with pytest.raises(ConnectionRefusedError):
            connect(gate)
        gate.set_mode("pass")
        with connect(gate) as sock:
            assert round_trip(sock, b"open") == b"open"
