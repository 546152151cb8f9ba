"""An OpenAI-compatible chat completions server on loopback, for tests and the benchmark.

It records every request (path, headers, JSON body) and answers from a script: each request takes
the next scripted behaviour, or the default one when the script is empty. Behaviours: a normal
answer, an error status (optionally with ``Retry-After``), a delay (to trip read timeouts),
a malformed body, and a stream of server-sent event chunks that can stop and hang half-way."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    text: str = "Orbsurv answer. See (/resources/reset-your-password)."
    delay: float = 0.0  # seconds before the answer is sent
    total_tokens: int | None = 42
    usage_json: str | None = (
        None  # the raw JSON sent as ``usage`` instead, e.g. ``{"total_tokens": 1e400}``
    )


@dataclass(frozen=True)
class Failure:
    status: int = 500
    body: bytes = b'{"error": {"message": "SECRET upstream stack trace: db at 10.0.0.7"}}'
    retry_after: str | None = None


@dataclass(frozen=True)
class Malformed:
    body: bytes = b'{"choices": [{"message": '


@dataclass(frozen=True)
class Stream:
    chunks: tuple[str, ...] = ("Hello ", "from ", "the ", "stream.")
    hang_after: int | None = None  # stop after this many chunks and wait for ``release``
    malformed_after: int | None = None  # send a broken chunk after this many


Behaviour = Answer | Failure | Malformed | Stream


@dataclass
class StubModel:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: deque[Behaviour] = field(default_factory=deque)
    default: Behaviour = field(default_factory=Answer)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.script.clear()
            self.default = Answer()
            self.release = threading.Event()

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def _handler(model: StubModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _event(self, payload: str) -> None:
            self._chunk(f"data: {payload}\n\n".encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with model.lock:
                model.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
            behaviour = model.next_behaviour()
            if isinstance(behaviour, Failure):
                headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
                self._send(behaviour.status, behaviour.body, headers)
            elif isinstance(behaviour, Malformed):
                self._send(200, behaviour.body)
            elif isinstance(behaviour, Stream) or body.get("stream"):
                self._stream(behaviour if isinstance(behaviour, Stream) else Stream())
            else:
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                answer = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": behaviour.text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"total_tokens": behaviour.total_tokens},
                }
                text = json.dumps(answer)
                if behaviour.usage_json is not None:
                    text = text.replace(json.dumps(answer["usage"]), behaviour.usage_json)
                self._send(200, text.encode())

        def _stream(self, stream: Stream) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for position, text in enumerate(stream.chunks):
                    if stream.hang_after is not None and position == stream.hang_after:
                        model.release.wait(timeout=60)
                        return
                    if stream.malformed_after is not None and position == stream.malformed_after:
                        self._event("{not json")
                        self._chunk(b"")
                        return
                    delta = {"choices": [{"index": 0, "delta": {"content": text}}]}
                    self._event(json.dumps(delta))
                self._event("[DONE]")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up (timeout tests) is expected here


@contextmanager
def stub_model() -> Iterator[StubModel]:
    model = StubModel()
    server = _Server(("127.0.0.1", 0), _handler(model))
    model.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        model.release.set()
        server.shutdown()
        server.server_close()
