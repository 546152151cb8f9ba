"""Keep-alive after an early answer, over a raw socket against the real server process.

A response sent before the request body was read (413, and any other early refusal) must say
``Connection: close`` (RFC 9112 section 9.6): otherwise the server may close the connection with
the unread body in it, and the client's next request on it fails with "server disconnected"."""

from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit

import pytest

BIG = 3 * 1024 * 1024  # above MAX_JSON_BODY_BYTES (1 MiB)


def _connect(live_server: str) -> socket.socket:
    parts = urlsplit(live_server)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may stop reading once it has answered
        sock.sendall(data)


@pytest.mark.parametrize(
    "request_head",
    [
        # Too large: refused from Content-Length before any body byte is read.
        b"POST /api/v1/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % BIG,
        # Refused by routing before the body is read: a method the route does not answer.
        b"PUT /api/v1/healthz HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (BIG // 4),
        # No such route: 404 without reading the body.
        b"POST /api/v1/no-such-route HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (BIG // 4),
    ],
)
def test_an_answer_before_the_body_says_connection_close(
    live_server: str, request_head: bytes
) -> None:
    for _ in range(5):  # "sometimes": every time, then
        with _connect(live_server) as sock:
            sock.sendall(request_head)
            _send_quietly(sock, b"x" * 65536)
            status, headers, _ = _read_head(sock)
            assert status >= 400
            assert headers.get("connection", "").lower() == "close", (status, headers)


def test_a_normal_answer_keeps_the_connection(live_server: str) -> None:
    with _connect(live_server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /api/v1/healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, _ = _read_head(sock)
            assert status == 200
            assert headers.get("connection", "").lower() != "close"
