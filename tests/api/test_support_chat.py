"""Support chat over HTTP, in-process: the default knowledge-base assistant, an OpenAI-compatible
model on loopback, limits, budgets, ownership, the console's audited view, streaming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.domain.identity import Role
from orbsurv.domain.support import FALLBACK_REPLY, NO_MATCH_REPLY
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.ai_stub import Answer, Failure, Malformed, StubModel
from tests.api.identity_helpers import (
    Client,
    bearer,
    create_account,
    fetch,
    login,
    register,
    sign_up,
)
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, truncate_all
from tests.data.knowledge_base import RESOURCES

CHAT = "/api/v1/support-chat/messages"


class Chat:
    def __init__(self, app: Litestar, client: Client, tokens: dict[str, str]) -> None:
        self.app = app
        self.client = client
        self.tokens = tokens

    async def ask(self, message: str, who: str = "ada", **extra: Any) -> Any:
        return await self.client.post(
            CHAT, json={"message": message, **extra}, headers=bearer(self.tokens[who])
        )

    async def seed(self, count: int = len(RESOURCES)) -> None:
        for item in RESOURCES[:count]:
            created = await self.client.post(
                "/api/v1/resources",
                json={**item, "published": True},
                headers=bearer(self.tokens["admin"]),
            )
            assert created.status_code == 201, created.text


Factory = Callable[..., Any]


@pytest.fixture
async def chat_factory(
    make_settings: SettingsFactory,
) -> AsyncIterator[Factory]:
    opened: list[AsyncTestClient[Litestar]] = []

    async def open_chat(**env: str) -> Chat:
        settings = make_settings(INPROCESS_WORKER="false", **env)
        app = make_app(settings)
        client = AsyncTestClient(app)
        await client.__aenter__()
        opened.append(client)
        await create_account(app, "admin@example.com", Role.ADMIN)
        tokens = {
            "ada": (await register(client, "ada@example.com"))["access_token"],
            "bob": (await register(client, "bob@example.com"))["access_token"],
            "admin": (await login(client, "admin@example.com")).json()["access_token"],
        }
        client.cookies.clear()
        chat = Chat(app, client, tokens)
        chat.settings = settings  # type: ignore[attr-defined]
        return chat

    yield open_chat
    for client in opened:
        await client.__aexit__(None, None, None)


async def test_the_knowledge_base_answers_with_sources(chat_factory: Factory) -> None:
    chat = await chat_factory()
    await chat.seed()
    first = await chat.ask("I forgot my password, how do I reset it?")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["sources"][0] == "reset-your-password"
    assert "/api/v1/resources/reset-your-password" in body["assistant_reply"]
    assert body["status"] == "complete"
    assert first.headers["cache-control"] == "no-store"

    second = await chat.ask(
        "And how do I turn on two-factor?", conversation_id=body["conversation_id"]
    )
    assert second.json()["conversation_id"] == body["conversation_id"]
    assert second.json()["sources"][0] == "two-factor-totp"

    listed = await chat.client.get(CHAT, headers=bearer(chat.tokens["ada"]))
    items = listed.json()["items"]
    assert [(m["role"], m["status"]) for m in items] == [
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
    ]  # newest first
    assert items[3]["content"] == "I forgot my password, how do I reset it?"
    page = await chat.client.get(
        CHAT,
        params={"conversation_id": body["conversation_id"], "limit": 3},
        headers=bearer(chat.tokens["ada"]),
    )
    assert len(page.json()["items"]) == 3
    rest = await chat.client.get(
        CHAT,
        params={"conversation_id": body["conversation_id"], "cursor": page.json()["next_cursor"]},
        headers=bearer(chat.tokens["ada"]),
    )
    assert [m["id"] for m in rest.json()["items"]] == [items[3]["id"]]
    assert rest.json()["next_cursor"] is None

    conversations = await chat.client.get(
        "/api/v1/support-chat/conversations", headers=bearer(chat.tokens["ada"])
    )
    [conversation] = conversations.json()["items"]
    assert conversation["id"] == body["conversation_id"]
    assert conversation["title"] == "I forgot my password, how do I reset it?"


async def test_nothing_matching_is_said_plainly(chat_factory: Factory) -> None:
    chat = await chat_factory()
    await chat.seed(5)
    reply = (await chat.ask("zebra xylophone quantum")).json()
    assert reply["assistant_reply"] == NO_MATCH_REPLY
    assert reply["sources"] == []


async def test_another_users_conversation_is_404(chat_factory: Factory) -> None:
    chat = await chat_factory()
    mine = (await chat.ask("hello")).json()["conversation_id"]
    assert_problem(
        await chat.ask("hi", who="bob", conversation_id=mine), 404, "conversation_not_found"
    )
    assert_problem(
        await chat.client.get(
            CHAT, params={"conversation_id": mine}, headers=bearer(chat.tokens["bob"])
        ),
        404,
        "conversation_not_found",
    )
    assert_problem(
        await chat.ask("hi", conversation_id="no-such-id"), 404, "conversation_not_found"
    )
    bobs = await chat.client.get(CHAT, headers=bearer(chat.tokens["bob"]))
    assert bobs.json()["items"] == []
    assert_problem(await chat.client.get(CHAT), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("message", "field"),
    [("", "message"), ("   ", "message"), ("a\x00b", "message"), ("x" * 4001, "message")],
)
async def test_bad_messages_are_422(chat_factory: Factory, message: str, field: str) -> None:
    chat = await chat_factory()
    body = assert_problem(await chat.ask(message), 422, "validation_error")
    assert body["errors"][0]["field"] == field
    assert (await chat.client.get(CHAT, headers=bearer(chat.tokens["ada"]))).json()["items"] == []


async def test_the_per_user_rate_limit(chat_factory: Factory) -> None:
    chat = await chat_factory(SUPPORT_MESSAGES_PER_MINUTE="2")
    assert (await chat.ask("one")).status_code == 201
    assert (await chat.ask("two")).status_code == 201
    limited = await chat.ask("three")
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert (await chat.ask("bob is not limited", who="bob")).status_code == 201
    stored = await chat.client.get(CHAT, headers=bearer(chat.tokens["ada"]))
    assert "three" not in [m["content"] for m in stored.json()["items"]]


async def test_the_daily_token_budget(chat_factory: Factory) -> None:
    chat = await chat_factory(SUPPORT_DAILY_TOKENS="800", SUPPORT_REPLY_TOKENS="512")
    assert (await chat.ask("first question")).status_code == 201
    spent = await chat.ask("second question")  # the reply cap no longer fits today's budget
    body = assert_problem(spent, 429, "token_budget_exhausted")
    assert "midnight" in body["detail"]
    assert 1 <= int(spent.headers["retry-after"]) <= 86_400
    [usage] = await fetch(chat.settings, "SELECT tokens FROM support_token_usage")  # type: ignore[attr-defined]
    assert 0 < usage.tokens < 800  # the unused reservation was given back
    assert (await chat.ask("bob has his own budget", who="bob")).status_code == 201


async def test_a_long_table_does_not_spend_the_day_on_one_question(
    chat_factory: Factory,
) -> None:
    chat = await chat_factory()
    rows = "\n".join(f"| quota plan {i} | {i} GB storage |" for i in range(1000))
    created = await chat.client.post(
        "/api/v1/resources",
        json={
            "title": "Storage quota plans",
            "type": "knowledge",
            "description": "Storage quota per plan.",
            "body": f"| plan | storage |\n|---|---|\n{rows}",
            "published": True,
        },
        headers=bearer(chat.tokens["admin"]),
    )
    assert created.status_code == 201, created.text
    first = await chat.ask("What storage quota does each plan have?")
    assert first.status_code == 201, first.text
    assert first.json()["sources"] == ["storage-quota-plans"]
    second = await chat.ask("And which storage quota plan is the biggest?")
    assert second.status_code == 201, second.text
    [usage] = await fetch(chat.settings, "SELECT tokens FROM support_token_usage")  # type: ignore[attr-defined]
    assert usage.tokens < 4_000  # two questions, each with a few bounded passages


async def test_the_model_gets_trimmed_history_and_the_system_prompt(
    chat_factory: Factory, model: StubModel
) -> None:
    chat = await chat_factory(
        AI_BASE_URL=model.base_url, AI_MODEL="stub", SUPPORT_HISTORY_TOKENS="100"
    )
    await chat.seed()
    first = "a" * 200  # 50 tokens each
    reply = (await chat.ask(first)).json()
    await chat.ask("b" * 200, conversation_id=reply["conversation_id"])
    third = await chat.ask("How do I reset my password?", conversation_id=reply["conversation_id"])
    assert third.status_code == 201
    assert third.json()["assistant_reply"] == Answer().text
    assert third.json()["sources"] == ["reset-your-password"]
    messages = model.requests[-1]["body"]["messages"]
    assert messages[0]["role"] == "system"
    assert "Answer only questions about using Orbsurv" in messages[0]["content"]
    assert "[/api/v1/resources/reset-your-password]" in messages[0]["content"]
    contents = [m["content"] for m in messages[1:]]
    assert contents[-1] == "How do I reset my password?"
    assert first not in contents  # the oldest turn no longer fits 100 tokens
    assert "b" * 200 in contents
    assert len(model.requests[0]["body"]["messages"]) == 2  # system + the first question


async def test_the_upstreams_token_count_is_bounded(
    make_settings: SettingsFactory, model: StubModel, database_url: str
) -> None:
    """A negative or absurd ``usage.total_tokens`` neither resets the day's usage nor
    overflows the counter (asyncpg refused 2**63 - 1 with a 500)."""
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(
        DATABASE_URL=database_url,
        INPROCESS_WORKER="false",
        AI_BASE_URL=model.base_url,
        AI_MODEL="stub",
    )
    async with AsyncTestClient(make_app(settings)) as client:
        ada = await sign_up(client)
        await _bounded_usage(client, settings, model, ada)


async def _bounded_usage(
    client: Client, settings: Settings, model: StubModel, ada: dict[str, str]
) -> None:
    async def ask(message: str) -> Any:
        return await client.post(CHAT, json={"message": message}, headers=ada)

    usage = "SELECT tokens FROM support_token_usage"

    assert (await ask("How do I reset my password?")).status_code == 201
    [before] = await fetch(settings, usage)
    assert before.tokens == Answer().total_tokens
    model.script.append(Answer(total_tokens=-1_000_000))
    negative = await ask("And how do I change it?")
    assert negative.status_code == 201, negative.text
    [after] = await fetch(settings, usage)
    assert after.tokens == before.tokens  # charged nothing, and nothing given back

    model.script.append(Answer(total_tokens=2**63 - 1))
    huge = await ask("What is two-factor?")
    assert huge.status_code == 201, huge.text
    assert huge.json()["status"] == "complete"
    [bounded] = await fetch(settings, usage)
    assert after.tokens < bounded.tokens <= after.tokens + 2 * 20_000
    [reply] = await fetch(
        settings,
        "SELECT tokens FROM support_messages WHERE id = :id",
        id=huge.json()["reply_id"],
    )
    assert reply.tokens == bounded.tokens - after.tokens
    stored = (await client.get(CHAT, headers=ada)).json()["items"]
    assert [m["role"] for m in stored] == ["assistant", "user"] * 3

    # A float count is a count: the reply is kept and charged, not replaced by the fallback.
    model.script.append(Answer(text="Whole reply.", usage_json='{"total_tokens": 12.0}'))
    whole = await ask("And the float?")
    assert whole.status_code == 201, whole.text
    assert whole.json()["assistant_reply"] == "Whole reply."
    assert whole.json()["status"] == "complete"
    [charged] = await fetch(settings, usage)
    assert charged.tokens == bounded.tokens + 12

    model.script.append(Answer(text="Huge float.", usage_json='{"total_tokens": 1e30}'))
    huge_float = await ask("And the huge float?")
    assert huge_float.json()["assistant_reply"] == "Huge float."
    [capped] = await fetch(settings, usage)
    assert charged.tokens < capped.tokens <= charged.tokens + 2 * 20_000


@pytest.mark.parametrize(
    "failure",
    [Failure(500), Failure(429, retry_after="3600"), Malformed(), Answer(delay=3.0)],
    ids=["500", "429-long-retry-after", "malformed-json", "read-timeout"],
)
async def test_an_upstream_failure_stores_a_fallback(
    chat_factory: Factory, model: StubModel, failure: Any
) -> None:
    chat = await chat_factory(
        AI_BASE_URL=model.base_url,
        AI_MODEL="stub",
        AI_MAX_RETRIES="0",
        AI_TIMEOUT_SECONDS="0.5",
    )
    model.default = failure
    response = await chat.ask("Is anything broken?")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "degraded"
    assert body["assistant_reply"] == FALLBACK_REPLY
    assert "SECRET" not in response.text
    stored = (await chat.client.get(CHAT, headers=bearer(chat.tokens["ada"]))).json()["items"]
    assert [(m["role"], m["status"]) for m in stored] == [
        ("assistant", "degraded"),
        ("user", "complete"),
    ]


async def test_operators_read_conversations_audited(chat_factory: Factory) -> None:
    chat = await chat_factory()
    asked = (await chat.ask("hello there")).json()
    admin = bearer(chat.tokens["admin"])
    listed = await chat.client.get("/api/v1/admin/support/conversations", headers=admin)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == asked["conversation_id"]
    assert item["user_id"]
    transcript = await chat.client.get(
        f"/api/v1/admin/support/conversations/{asked['conversation_id']}", headers=admin
    )
    assert [m["role"] for m in transcript.json()["items"]] == ["assistant", "user"]
    assert_problem(
        await chat.client.get("/api/v1/admin/support/conversations/nope", headers=admin),
        404,
        "conversation_not_found",
    )
    assert_problem(
        await chat.client.get(
            "/api/v1/admin/support/conversations", headers=bearer(chat.tokens["ada"])
        ),
        403,
        "forbidden",
    )
    rows = await fetch(
        chat.settings,  # type: ignore[attr-defined]
        "SELECT target_id FROM audit_events WHERE action = 'support.conversations_read'",
    )
    assert sorted(str(row.target_id) for row in rows) == sorted(["None", asked["conversation_id"]])


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_streaming_in_process(chat_factory: Factory) -> None:
    chat = await chat_factory()
    await chat.seed()
    response = await chat.client.post(
        CHAT,
        json={"message": "How do I enable two-factor authentication?"},
        headers={**bearer(chat.tokens["ada"]), "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    assert events[0][0] == "start"
    assert events[-1][0] == "done"
    text = "".join(data["text"] for kind, data in events if kind == "delta")
    done = events[-1][1]
    assert done["assistant_reply"] == text
    assert done["sources"][0] == "two-factor-totp"
    assert done["status"] == "complete"
    stored = (await chat.client.get(CHAT, headers=bearer(chat.tokens["ada"]))).json()["items"]
    assert stored[0]["id"] == done["reply_id"]
    assert stored[0]["content"] == text


async def test_support_lists_refuse_offset_pages(chat_factory: Factory) -> None:
    chat = await chat_factory()
    asked = (await chat.ask("hello there")).json()
    ada, admin = bearer(chat.tokens["ada"]), bearer(chat.tokens["admin"])
    transcript = f"/api/v1/admin/support/conversations/{asked['conversation_id']}"
    for path, auth in (
        (CHAT, ada),
        ("/api/v1/support-chat/conversations", ada),
        ("/api/v1/admin/support/conversations", admin),
        (transcript, admin),
    ):
        params = {"page_size": 1, "page": 2}
        refused = await chat.client.get(path, params=params, headers=auth)
        body = assert_problem(refused, 422, "validation_error")
        assert body["errors"][0]["field"] == "page", path
        assert "cursor" in body["errors"][0]["message"], path
        first = await chat.client.get(path, params={"page_size": 1, "page": 1}, headers=auth)
        assert first.status_code == 200, path
