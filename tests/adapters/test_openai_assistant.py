"""OpenAICompatibleAssistant against an OpenAI-compatible server on loopback."""

from __future__ import annotations

import time

import pytest

from orbsurv.adapters.ai.openai_compatible import (
    SYSTEM_PROMPT,
    OpenAICompatibleAssistant,
    retry_after_seconds,
)
from orbsurv.application.support.ports import AssistantUnavailable
from orbsurv.domain.support import Passage, Speaker, Turn
from tests.ai_stub import Answer, Failure, Malformed, Stream, StubModel

PASSAGES = [
    Passage("reset-your-password", "Reset a forgotten password", "Use Forgot password.", 3.0),
    Passage("account-lockout", "Locked out", "Five failures lock the account.", 1.0),
]
QUESTION = [Turn(Speaker.USER, "I forgot my password")]


def assistant(model: StubModel, **options: float) -> OpenAICompatibleAssistant:
    settings = {"read_timeout": 5.0, "backoff_base": 0.01, **options}
    return OpenAICompatibleAssistant(
        model.base_url,
        "stub-model",
        "sk-test-key",
        read_timeout=settings["read_timeout"],
        backoff_base=settings["backoff_base"],
        max_retries=int(options.get("max_retries", 2)),
    )


async def test_sends_the_system_prompt_passages_and_history(model: StubModel) -> None:
    conversation = [
        Turn(Speaker.USER, "Hello"),
        Turn(Speaker.ASSISTANT, "Hi, how can I help?"),
        *QUESTION,
    ]
    reply = await assistant(model).reply(conversation, PASSAGES)
    assert reply.text == Answer().text
    assert reply.sources == ("reset-your-password",)  # only the slug the answer cites
    assert reply.tokens == 42
    [request] = model.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-key"
    body = request["body"]
    assert body["model"] == "stub-model"
    assert body["stream"] is False
    system, *turns = body["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith(SYSTEM_PROMPT)
    assert "[/api/v1/resources/reset-your-password] Reset a forgotten password" in system["content"]
    assert turns == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi, how can I help?"},
        {"role": "user", "content": "I forgot my password"},
    ]


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        ('{"total_tokens": 12.0}', 12),
        ('{"total_tokens": 12.25}', 13),  # a fraction of a token is charged as a whole one
        ('{"total_tokens": 1e30}', 2**63 - 1),  # saturated; settled_tokens bounds it
        ('{"total_tokens": 1e400}', 2**63 - 1),  # beyond any float
        ('{"total_tokens": -5e2}', -500),  # settled_tokens charges 0 for it
        ('{"total_tokens": true}', None),
        ('{"total_tokens": "12"}', None),
        ('{"total_tokens": null}', None),
        ('{"total_tokens": {"n": 1e400}}', None),
        ("{}", None),
        ('"n/a"', None),
        ("[12]", None),
        ("null", None),
    ],
)
async def test_any_usage_figure_keeps_the_reply(
    usage: str, tokens: int | None, model: StubModel
) -> None:
    model.default = Answer(text="A valid reply.", usage_json=usage)
    reply = await assistant(model).reply(QUESTION, PASSAGES)
    assert reply.text == "A valid reply."
    assert reply.tokens == tokens


async def test_sources_are_only_slugs_we_offered(model: StubModel) -> None:
    model.default = Answer(text="See /resources/evil-link and (/resources/account-lockout)\x00.")
    reply = await assistant(model).reply(QUESTION, PASSAGES)
    assert reply.sources == ("account-lockout",)
    assert "\x00" not in reply.text  # untrusted text is cleaned before it is stored


async def test_429_is_retried_after_retry_after(model: StubModel) -> None:
    model.script.extend([Failure(429, retry_after="1"), Answer(text="second try")])
    started = time.monotonic()
    reply = await assistant(model).reply(QUESTION, PASSAGES)
    assert reply.text == "second try"
    assert len(model.requests) == 2
    assert time.monotonic() - started >= 0.9  # it waited as told


async def test_5xx_is_retried_with_backoff_then_gives_up(model: StubModel) -> None:
    model.default = Failure(503)
    with pytest.raises(AssistantUnavailable) as raised:
        await assistant(model, max_retries=2).reply(QUESTION, PASSAGES)
    assert len(model.requests) == 3
    assert "SECRET" not in str(raised.value)  # the upstream body is never passed on


async def test_a_long_retry_after_gives_up_at_once(model: StubModel) -> None:
    model.script.append(Failure(429, retry_after="3600"))
    with pytest.raises(AssistantUnavailable):
        await assistant(model).reply(QUESTION, PASSAGES)
    assert len(model.requests) == 1


async def test_a_4xx_is_not_retried(model: StubModel) -> None:
    model.default = Failure(400)
    with pytest.raises(AssistantUnavailable):
        await assistant(model).reply(QUESTION, PASSAGES)
    assert len(model.requests) == 1


async def test_read_timeout(model: StubModel) -> None:
    model.default = Answer(delay=2.0)
    with pytest.raises(AssistantUnavailable, match="timed out"):
        await assistant(model, read_timeout=0.2).reply(QUESTION, PASSAGES)


async def test_malformed_json(model: StubModel) -> None:
    model.default = Malformed()
    with pytest.raises(AssistantUnavailable, match="not a chat completion"):
        await assistant(model).reply(QUESTION, PASSAGES)


async def test_connection_refused() -> None:
    dead = OpenAICompatibleAssistant(
        "http://127.0.0.1:9/v1", "m", connect_timeout=1, max_retries=1, backoff_base=0.01
    )
    with pytest.raises(AssistantUnavailable, match="cannot connect"):
        await dead.reply(QUESTION, PASSAGES)


async def test_streaming(model: StubModel) -> None:
    deltas = [d async for d in assistant(model).stream(QUESTION, PASSAGES)]
    assert deltas == list(Stream().chunks)
    assert model.requests[0]["body"]["stream"] is True


async def test_a_malformed_stream_chunk_fails(model: StubModel) -> None:
    model.default = Stream(malformed_after=2)
    seen: list[str] = []

    async def read() -> None:
        async for delta in assistant(model).stream(QUESTION, PASSAGES):
            seen.append(delta)

    with pytest.raises(AssistantUnavailable, match="not JSON"):
        await read()
    assert seen == ["Hello ", "from "]


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
