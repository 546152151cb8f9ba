"""Support chat streaming through the real server process, with an SSE client, against an
OpenAI-compatible model on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ai_stub import Stream, StubModel, stub_model
from tests.e2e.conftest import clean_env, running_server

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def streaming_model() -> Iterator[StubModel]:
    with stub_model() as model:
        yield model


@pytest.fixture(scope="module")
def chat_server(
    tmp_path_factory: pytest.TempPathFactory, streaming_model: StubModel
) -> Iterator[str]:
    env = clean_env(
        ENV="test", AI_BASE_URL=streaming_model.base_url, AI_MODEL="stub", AI_MAX_RETRIES="0"
    )
    with running_server(tmp_path_factory.mktemp("chat"), env) as url:
        yield url


def token_for(url: str, email: str) -> str:
    response = httpx.post(
        f"{url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events (``event``/``data`` fields, blank-line separated) as they arrive."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if event is not None:
                yield event, json.loads("\n".join(data))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def messages(url: str, token: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/api/v1/support-chat/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_reply_streams_and_is_stored(chat_server: str, streaming_model: StubModel) -> None:
    streaming_model.reset()
    streaming_model.default = Stream(chunks=("Sign ", "in ", "with ", "your email."))
    token = token_for(chat_server, "stream@example.com")
    seen: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "POST",
        f"{chat_server}/api/v1/support-chat/messages",
        json={"message": "How do I sign in?"},
        headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seen = list(sse_events(response.iter_lines()))
    kinds = [kind for kind, _ in seen]
    assert kinds == ["start", "delta", "delta", "delta", "delta", "done"]
    assert [data["text"] for kind, data in seen if kind == "delta"] == [
        "Sign ",
        "in ",
        "with ",
        "your email.",
    ]
    done = seen[-1][1]
    assert done["status"] == "complete"
    assert done["assistant_reply"] == "Sign in with your email."
    assert streaming_model.requests[-1]["body"]["stream"] is True
    stored = messages(chat_server, token)
    assert (stored[0]["id"], stored[0]["status"]) == (done["reply_id"], "complete")


def test_a_client_that_leaves_mid_stream_leaves_a_partial_reply(
    chat_server: str, streaming_model: StubModel
) -> None:
    streaming_model.reset()
    streaming_model.default = Stream(chunks=("First ", "part. ", "never sent"), hang_after=2)
    token = token_for(chat_server, "leaver@example.com")
    with httpx.stream(
        "POST",
        f"{chat_server}/api/v1/support-chat/messages",
        json={"message": "Tell me everything"},
        headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        deltas = 0
        for kind, _ in sse_events(response.iter_lines()):
            deltas += kind == "delta"
            if deltas == 2:
                break  # leave while the model is still "thinking"
    # The connection is closed; the server must notice and store what it had.
    deadline = time.monotonic() + 30
    stored: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        stored = [m for m in messages(chat_server, token) if m["role"] == "assistant"]
        if stored:
            break
        time.sleep(0.1)
    streaming_model.release.set()
    assert stored, "the partial reply was not stored"
    assert stored[0]["status"] == "partial"
    assert stored[0]["content"] == "First part. "
