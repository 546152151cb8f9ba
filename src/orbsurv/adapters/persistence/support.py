"""Support conversations, messages and daily token budgets in SQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.keyset import newest_first
from orbsurv.adapters.persistence.tables import (
    support_conversations,
    support_messages,
    support_token_usage,
)
from orbsurv.application.support.ports import Settlement
from orbsurv.domain.pagination import Cursor, CursorPage
from orbsurv.domain.support import ChatMessage, Conversation, ReplyStatus, Speaker


def _to_conversation(row: sa.Row[Any]) -> Conversation:
    m = row._mapping
    return Conversation(
        id=m["id"],
        user_id=m["user_id"],
        title=m["title"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _to_message(row: sa.Row[Any]) -> ChatMessage:
    m = row._mapping
    return ChatMessage(
        id=m["id"],
        conversation_id=m["conversation_id"],
        user_id=m["user_id"],
        speaker=Speaker(m["role"]),
        text=m["content"],
        sources=tuple(m["sources"] or ()),
        status=ReplyStatus(m["status"]),
        tokens=m["tokens"],
        created_at=m["created_at"],
    )


async def _insert_message(conn: AsyncConnection, message: ChatMessage) -> None:
    await conn.execute(
        support_messages.insert().values(
            id=message.id,
            conversation_id=message.conversation_id,
            user_id=message.user_id,
            role=message.speaker.value,
            content=message.text,
            sources=list(message.sources),
            status=message.status.value,
            tokens=message.tokens,
            created_at=message.created_at,
        )
    )
    await conn.execute(
        support_conversations.update()
        .where(
            support_conversations.c.id == message.conversation_id,
            support_conversations.c.updated_at < message.created_at,
        )
        .values(updated_at=message.created_at)
    )


class SqlConversationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, conversation_id: str) -> Conversation | None:
        row = (
            await self._conn.execute(
                sa.select(support_conversations).where(
                    support_conversations.c.id == conversation_id
                )
            )
        ).first()
        return _to_conversation(row) if row is not None else None

    async def add(self, conversation: Conversation) -> None:
        await self._conn.execute(
            support_conversations.insert().values(
                id=conversation.id,
                user_id=conversation.user_id,
                title=conversation.title[:200],
                created_at=conversation.created_at,
                updated_at=conversation.updated_at,
            )
        )

    async def add_message(self, message: ChatMessage) -> None:
        await _insert_message(self._conn, message)

    async def recent(self, conversation_id: str, limit: int) -> list[ChatMessage]:
        rows = await self._conn.execute(
            sa.select(support_messages)
            .where(support_messages.c.conversation_id == conversation_id)
            .order_by(support_messages.c.created_at.desc(), support_messages.c.id.desc())
            .limit(limit)
        )
        return [_to_message(row) for row in reversed(rows.all())]

    async def messages(
        self, user_id: str | None, conversation_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[ChatMessage]:
        query = sa.select(support_messages)
        if user_id is not None:
            query = query.where(support_messages.c.user_id == user_id)
        if conversation_id is not None:
            query = query.where(support_messages.c.conversation_id == conversation_id)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=support_messages.c.created_at,
            id_=support_messages.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[_to_message(row) for row in rows], next_cursor=next_cursor)

    async def conversations(
        self, user_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Conversation]:
        query = sa.select(support_conversations)
        if user_id is not None:
            query = query.where(support_conversations.c.user_id == user_id)
        rows, next_cursor = await newest_first(
            self._conn,
            query,
            created_at=support_conversations.c.created_at,
            id_=support_conversations.c.id,
            cursor=cursor,
            limit=limit,
        )
        return CursorPage(items=[_to_conversation(row) for row in rows], next_cursor=next_cursor)


def _upsert(conn: AsyncConnection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(support_token_usage)


class SqlTokenBudget:
    """Daily token counts per user: one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` that adds only
    while the sum stays within the limit, so concurrent reservations never overspend."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def reserve(self, user_id: str, day: str, tokens: int, limit: int) -> bool:
        if tokens > limit:
            return False
        insert = _upsert(self._conn).values(user_id=user_id, day=day, tokens=tokens)
        current = support_token_usage.c.tokens
        statement = insert.on_conflict_do_update(
            index_elements=[support_token_usage.c.user_id, support_token_usage.c.day],
            set_={"tokens": current + insert.excluded.tokens},
            where=current + insert.excluded.tokens <= limit,
        ).returning(current)
        return (await self._conn.execute(statement)).first() is not None


class SqlSupportReplies:
    """Stores a finished reply on a connection of its own (the request's may be gone)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, reply: ChatMessage, settlement: Settlement) -> None:
        reply.tokens = settlement.used
        unused = settlement.reserved - settlement.used  # negative: the reply overran its cap
        async with self._engine.begin() as conn:
            await _insert_message(conn, reply)
            if unused:
                current = support_token_usage.c.tokens
                await conn.execute(
                    support_token_usage.update()
                    .where(
                        support_token_usage.c.user_id == settlement.user_id,
                        support_token_usage.c.day == settlement.day,
                    )
                    .values(tokens=sa.case((current > unused, current - unused), else_=0))
                )
