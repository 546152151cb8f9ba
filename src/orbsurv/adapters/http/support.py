"""Support chat over HTTP: ask (JSON or a server-sent event stream), read one's own history, and
the console's audited view of every conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from litestar import Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from orbsurv.adapters.http.auth import SECURITY, requires
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.content import statuses
from orbsurv.adapters.http.di import inject, inject_app
from orbsurv.adapters.http.pagination import KEYSET_PAGING, encode_cursor, provide_cursor
from orbsurv.adapters.http.schemas import blank_to_none
from orbsurv.application.support.chat import (
    AnswerSupport,
    AskSupport,
    OpenTurn,
    ReadSupportHistory,
    ReviewSupportChats,
    SupportQuestion,
)
from orbsurv.domain.content import storable
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.pagination import CursorPage, PageRequest
from orbsurv.domain.support import MESSAGE_MAX_LENGTH, ChatMessage, Conversation

READERS = {"operator": Provide(requires(Permission.READ_CONSOLE))}
Paging = NamedDependency[PageRequest]
Cursor = Annotated[str | None, Parameter(max_length=512, description="From next_cursor")]
Id = Annotated[str, Parameter(max_length=64)]
EVENT_STREAM = "text/event-stream"


class AskBody(msgspec.Struct, kw_only=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=MESSAGE_MAX_LENGTH)]
    conversation_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class ReplyOut(msgspec.Struct, frozen=True):
    message_id: str
    conversation_id: str
    reply_id: str
    assistant_reply: str
    sources: list[str]
    status: str


class MessageOut(msgspec.Struct, frozen=True):
    id: str
    conversation_id: str
    role: str
    content: str
    sources: list[str]
    status: str
    created_at: datetime

    @classmethod
    def of(cls, message: ChatMessage) -> MessageOut:
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            role=message.speaker.value,
            content=message.text,
            sources=list(message.sources),
            status=message.status.value,
            created_at=message.created_at,
        )


class MessagePage(msgspec.Struct, frozen=True):
    items: list[MessageOut]
    next_cursor: str | None
    page_size: int


class ConversationOut(msgspec.Struct, frozen=True):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    user_id: str | None = None  # in the console only

    @classmethod
    def of(cls, conversation: Conversation, *, with_owner: bool = False) -> ConversationOut:
        return cls(
            id=conversation.id,
            title=conversation.title,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
            user_id=conversation.user_id if with_owner else None,
        )


class ConversationPage(msgspec.Struct, frozen=True, omit_defaults=True):
    items: list[ConversationOut]
    next_cursor: str | None
    page_size: int


class ConversationTranscript(msgspec.Struct, frozen=True):
    conversation: ConversationOut
    items: list[MessageOut]
    next_cursor: str | None
    page_size: int


def _messages(page: CursorPage[ChatMessage], size: int) -> MessagePage:
    cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return MessagePage([MessageOut.of(m) for m in page.items], cursor, size)


def _conversations(
    page: CursorPage[Conversation], size: int, *, with_owner: bool = False
) -> ConversationPage:
    cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    items = [ConversationOut.of(c, with_owner=with_owner) for c in page.items]
    return ConversationPage(items, cursor, size)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _events(turn: OpenTurn, answer: AnswerSupport) -> AsyncIterator[ServerSentEventMessage]:
    """``start`` (ids), ``delta`` events (``{"text"}``), then ``done`` (the stored reply)."""
    ids = {"message_id": turn.message_id, "conversation_id": turn.conversation_id}
    yield ServerSentEventMessage(event="start", data=_json({**ids, "reply_id": turn.reply_id}))
    async for item in answer.stream(turn):
        if isinstance(item, str):
            yield ServerSentEventMessage(event="delta", data=_json({"text": item}))
        else:
            done = ReplyOut(
                message_id=turn.message_id,
                conversation_id=turn.conversation_id,
                reply_id=item.id,
                assistant_reply=item.text,
                sources=list(item.sources),
                status=item.status.value,
            )
            yield ServerSentEventMessage(event="done", data=_json(done))


def _wants_stream(request: Request[Any, Any, Any]) -> bool:
    """``Accept`` names ``text/event-stream`` with a quality above 0 (RFC 9110 §12.5.1: ``q=0``
    means "not acceptable"; a malformed quality counts as 0)."""
    for item in request.headers.get("accept", "").split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        if media.lower() != EVENT_STREAM:
            continue
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    return 0 < float(value) <= 1
                except ValueError:
                    return False
        return True
    return False


@post(
    "/support-chat/messages",
    tags=["support"],
    summary="Ask the support assistant",
    description=(
        "`{message 1-4000, conversation_id?}`; without `conversation_id` a new conversation "
        "starts. 201 `{message_id, conversation_id, reply_id, assistant_reply, sources, status}` "
        "where `status` is `complete`, or `degraded` when the assistant failed and a fixed "
        "fallback reply was stored. With `Accept: text/event-stream` the answer is 200 and a "
        "stream of server-sent events: `start` (`{message_id, conversation_id, reply_id}`), "
        "`delta` (`{text}`) as the reply is written, and `done` (the 201 body); a stream cut "
        "short is stored with status `partial`. Another user's conversation is 404. A per-user "
        "rate limit (429 `rate_limited`) and a daily token budget (429 `token_budget_exhausted`, "
        "renewed at midnight UTC) apply, both with `Retry-After`."
    ),
    status_code=201,
    security=SECURITY,
    responses={
        201: ResponseSpec(ReplyOut, description="The stored reply", generate_examples=False),
        200: ResponseSpec(
            str,
            media_type=EVENT_STREAM,
            description="With Accept: text/event-stream",
            generate_examples=False,
        ),
        **statuses(
            s401="Not signed in",
            s404="No such conversation of yours",
            s422="The message is empty, too long or not storable text",
            s429="Rate limited or daily budget spent (Retry-After)",
        ),
    },
)
@inject_app  # both use cases are APP scope: the request holds no connection of its own
async def ask(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    data: JSONBody[AskBody],
    ask_support: FromDishka[AskSupport],
    answer: FromDishka[AnswerSupport],
) -> Response[Any]:
    text = storable(data.message, "message").strip()
    if not text:
        raise FieldInvalid("message", "must not be blank")
    conversation_id = blank_to_none(data.conversation_id)
    question = SupportQuestion(principal.user_id, text, conversation_id)
    turn = await ask_support(question)
    headers = {"Cache-Control": "no-store"}
    if _wants_stream(request):
        return ServerSentEvent(
            _events(turn, answer), headers={**headers, "X-Accel-Buffering": "no"}, status_code=200
        )
    reply = await answer(turn)
    body = ReplyOut(
        message_id=turn.message_id,
        conversation_id=turn.conversation_id,
        reply_id=reply.id,
        assistant_reply=reply.text,
        sources=list(reply.sources),
        status=reply.status.value,
    )
    return Response(body, status_code=201, headers=headers)


@get(
    "/support-chat/messages",
    tags=["support"],
    summary="My support messages",
    dependencies=KEYSET_PAGING,
    description=(
        "Newest first by keyset (`next_cursor` back as `cursor`); `conversation_id` narrows to "
        "one of your conversations (another user's is 404). `limit` is 1..100."
    ),
    security=SECURITY,
    responses=statuses(s401="Not signed in", s404="No such conversation of yours"),
)
@inject
async def my_messages(
    principal: NamedDependency[Principal],
    paging: Paging,
    history: FromDishka[ReadSupportHistory],
    conversation_id: Annotated[str | None, Parameter(max_length=64)] = None,
    cursor: Cursor = None,
) -> Response[MessagePage]:
    page = await history.messages(
        principal.user_id, blank_to_none(conversation_id), provide_cursor(cursor), paging.page_size
    )
    return Response(_messages(page, paging.page_size), headers={"Cache-Control": "no-store"})


@get(
    "/support-chat/conversations",
    tags=["support"],
    summary="My support conversations",
    dependencies=KEYSET_PAGING,
    description="Newest first by keyset (`next_cursor` back as `cursor`).",
    security=SECURITY,
    responses=statuses(s401="Not signed in"),
)
@inject
async def my_conversations(
    principal: NamedDependency[Principal],
    paging: Paging,
    history: FromDishka[ReadSupportHistory],
    cursor: Cursor = None,
) -> Response[ConversationPage]:
    page = await history.list(principal.user_id, provide_cursor(cursor), paging.page_size)
    return Response(_conversations(page, paging.page_size), headers={"Cache-Control": "no-store"})


@get(
    "/admin/support/conversations",
    tags=["console"],
    summary="Support conversations of every user (audited)",
    description="Newest first by keyset; `user_id` narrows to one user. Every read is audited.",
    dependencies={**READERS, **KEYSET_PAGING},
    security=SECURITY,
    responses=statuses(s401="Not signed in", s403="Not an operator"),
)
@inject
async def all_conversations(
    request: Request[Any, Any, Any],
    operator: NamedDependency[Principal],
    paging: Paging,
    review: FromDishka[ReviewSupportChats],
    user_id: Annotated[str | None, Parameter(max_length=64)] = None,
    cursor: Cursor = None,
) -> Response[ConversationPage]:
    page = await review.list(
        operator,
        blank_to_none(user_id),
        provide_cursor(cursor),
        paging.page_size,
        request_context(request),
    )
    return Response(
        _conversations(page, paging.page_size, with_owner=True),
        headers={"Cache-Control": "no-store"},
    )


@get(
    "/admin/support/conversations/{conversation_id:str}",
    tags=["console"],
    summary="One support conversation's messages (audited)",
    description="Newest first by keyset. Every read is audited.",
    dependencies={**READERS, **KEYSET_PAGING},
    security=SECURITY,
    responses=statuses(s401="Not signed in", s403="Not an operator", s404="No such conversation"),
)
@inject
async def conversation_transcript(
    request: Request[Any, Any, Any],
    operator: NamedDependency[Principal],
    paging: Paging,
    conversation_id: Id,
    review: FromDishka[ReviewSupportChats],
    cursor: Cursor = None,
) -> Response[ConversationTranscript]:
    conversation, page = await review.read(
        operator,
        conversation_id,
        provide_cursor(cursor),
        paging.page_size,
        request_context(request),
    )
    messages = _messages(page, paging.page_size)
    body = ConversationTranscript(
        conversation=ConversationOut.of(conversation, with_owner=True),
        items=messages.items,
        next_cursor=messages.next_cursor,
        page_size=messages.page_size,
    )
    return Response(body, headers={"Cache-Control": "no-store"})


ROUTES = [ask, my_messages, my_conversations, all_conversations, conversation_transcript]
