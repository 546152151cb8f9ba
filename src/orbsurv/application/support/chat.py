"""Support chat: a signed-in user asks, the assistant answers from the knowledge base.

Policy, and why:
* A per-user rate limit (default 10 messages a minute) keyed on the account, never on what the
  client sends, so one user cannot drain the assistant for everybody.
* A daily token budget per user (UTC days). Before the assistant is called, the turn's worst
  case (prompt estimate plus the reply cap) is *reserved* by one conditional statement that only
  succeeds while budget remains, so parallel requests cannot overspend it; what the reply did not
  use is given back when it is stored. A spent budget is a 429 with ``Retry-After`` (seconds to
  the next UTC midnight) and stores nothing.
* The question is stored before the assistant is called, in its own committed transaction, so no
  database transaction stays open while a model thinks, and the question survives any failure.
* One request holds at most one pooled connection at a time, and none while the model writes:
  retrieval reads on a connection of its own and gives it back, the question is stored on
  another short one, the reply on a third (``SupportTransactions``, ``SupportReplies``). A
  request that held its connection and then asked the same pool for another deadlocked the
  pool under load: N parallel requests each holding one of N connections, all waiting.
* The assistant sees only the recent turns that fit the history budget and the passages retrieved
  for the question.
* An assistant failure stores a fixed fallback reply marked ``degraded``; the upstream's error
  text goes to the log only. A stream that stops early (the client went away) is still stored,
  marked ``partial``, whatever happens to the request that carried it.
* Another user's conversation is answered 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from orbsurv.application.faults import log_failure
from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.application.support.ports import (
    ConversationRepository,
    PassageRetriever,
    Settlement,
    SupportAssistant,
    SupportReplies,
    SupportTransactions,
    SupportWork,
)
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import NotFound, RateLimited
from orbsurv.domain.identity import Principal
from orbsurv.domain.pagination import Cursor, CursorPage
from orbsurv.domain.support import (
    FALLBACK_REPLY,
    AssistantReply,
    ChatMessage,
    Conversation,
    Passage,
    ReplyStatus,
    Speaker,
    Turn,
    cited_sources,
    conversation_title,
    estimate_tokens,
    recent_turns,
    seconds_until_next_day,
    settled_tokens,
)

logger = logging.getLogger(__name__)
PROMPT_OVERHEAD_TOKENS = 200  # the system prompt and message framing
_STORING: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class ChatPolicy:
    messages_per_minute: int = 10
    daily_tokens: int = 20_000
    history_tokens: int = 2_000
    reply_tokens: int = 512
    passages: int = 4
    history_messages: int = 40


@dataclass(frozen=True, slots=True)
class SupportQuestion:
    user_id: str
    text: str
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """A stored question, ready for the assistant: the turns it may see and its passages."""

    conversation_id: str
    message_id: str
    reply_id: str
    user_id: str
    turns: tuple[Turn, ...]
    passages: tuple[Passage, ...]
    prompt_tokens: int  # estimated
    reserved_tokens: int  # the prompt plus the reply cap
    day: str


def _not_found() -> NotFound:
    return NotFound("No such conversation.", code="conversation_not_found")


async def _own_conversation(
    conversations: ConversationRepository, conversation_id: str, user_id: str
) -> Conversation:
    conversation = await conversations.get(conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise _not_found()
    return conversation


@dataclass(frozen=True, slots=True)
class AskSupport:
    """Checks the limits, stores the question and prepares the turn (commits)."""

    transactions: SupportTransactions
    retriever: PassageRetriever
    limiter: RateLimiter
    clock: Clock
    policy: ChatPolicy

    async def __call__(self, question: SupportQuestion) -> OpenTurn:
        """Raise ``RateLimited`` (``rate_limited`` or ``token_budget_exhausted``) or
        ``NotFound`` (``conversation_not_found``); otherwise the question is committed."""
        policy = self.policy
        decision = await self.limiter.hit(
            f"support_chat:{question.user_id}",
            limit=policy.messages_per_minute,
            window_seconds=60,
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many support messages; wait a moment.", retry_after=decision.retry_after
            )
        # Retrieval reads on a connection of its own, given back before the transaction below.
        passages = await self.retriever.search(question.text, policy.passages)
        async with self.transactions() as work:
            return await self._store(work, question, passages)

    async def _store(
        self, work: SupportWork, question: SupportQuestion, passages: list[Passage]
    ) -> OpenTurn:
        policy = self.policy
        now = self.clock.now()
        history: list[Turn] = []
        if question.conversation_id is not None:
            conversation = await _own_conversation(
                work.conversations, question.conversation_id, question.user_id
            )
            stored = await work.conversations.recent(conversation.id, policy.history_messages)
            # A fallback reply is not the assistant's words: the model does not see it again.
            history = [
                Turn(message.speaker, message.text)
                for message in stored
                if message.status is not ReplyStatus.DEGRADED
            ]
        else:
            conversation = Conversation(
                user_id=question.user_id,
                title=conversation_title(question.text),
                created_at=now,
                updated_at=now,
            )
        turns = recent_turns([*history, Turn(Speaker.USER, question.text)], policy.history_tokens)
        prompt = (
            PROMPT_OVERHEAD_TOKENS
            + sum(estimate_tokens(turn.text) for turn in turns)
            + sum(estimate_tokens(passage.text) for passage in passages)
        )
        reserved = min(prompt + policy.reply_tokens, policy.daily_tokens)
        day = now.date().isoformat()
        if not await work.budget.reserve(question.user_id, day, reserved, policy.daily_tokens):
            raise RateLimited(
                "Your support chat allowance for today is spent; it renews at midnight UTC.",
                retry_after=seconds_until_next_day(now),
                code="token_budget_exhausted",
            )
        if question.conversation_id is None:
            await work.conversations.add(conversation)
        message = ChatMessage(
            conversation_id=conversation.id,
            user_id=question.user_id,
            speaker=Speaker.USER,
            text=question.text,
            created_at=now,
            tokens=estimate_tokens(question.text),
        )
        await work.conversations.add_message(message)
        await work.uow.commit()
        return OpenTurn(
            conversation_id=conversation.id,
            message_id=message.id,
            reply_id=str(uuid.uuid4()),
            user_id=question.user_id,
            turns=tuple(turns),
            passages=tuple(passages),
            prompt_tokens=prompt,
            reserved_tokens=reserved,
            day=day,
        )


def _fallback(passages: tuple[Passage, ...]) -> AssistantReply:
    return AssistantReply(FALLBACK_REPLY, tuple(dict.fromkeys(p.slug for p in passages)))


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to the end even when the caller is cancelled (a client that went away)."""
    task = asyncio.create_task(work)
    _STORING.add(task)
    task.add_done_callback(_STORING.discard)
    await asyncio.shield(task)


@dataclass(frozen=True, slots=True)
class AnswerSupport:
    """Gets the assistant's reply for an open turn and stores it (its own transaction)."""

    assistant: SupportAssistant
    replies: SupportReplies
    clock: Clock

    def _message(
        self, turn: OpenTurn, text: str, sources: tuple[str, ...], status: ReplyStatus
    ) -> ChatMessage:
        return ChatMessage(
            conversation_id=turn.conversation_id,
            user_id=turn.user_id,
            speaker=Speaker.ASSISTANT,
            text=text,
            created_at=self.clock.now(),
            sources=sources,
            status=status,
            id=turn.reply_id,
        )

    async def _store(self, turn: OpenTurn, message: ChatMessage, used: int | None) -> None:
        estimated = turn.prompt_tokens + estimate_tokens(message.text)
        spent = settled_tokens(used, turn.reserved_tokens, estimated)
        settlement = Settlement(turn.user_id, turn.day, turn.reserved_tokens, spent)
        await _shielded(self.replies.record(message, settlement))

    async def __call__(self, turn: OpenTurn) -> ChatMessage:
        status = ReplyStatus.COMPLETE
        try:
            reply = await self.assistant.reply(turn.turns, turn.passages)
        except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
            log_failure(logger, exc, "support assistant failed; storing the fallback reply")
            reply, status = _fallback(turn.passages), ReplyStatus.DEGRADED
        message = self._message(turn, reply.text, reply.sources, status)
        await self._store(turn, message, reply.tokens)
        return message

    async def stream(self, turn: OpenTurn) -> AsyncIterator[str | ChatMessage]:
        """Text deltas as they come, then the stored reply. However the stream ends (the
        assistant fails, the consumer stops reading or is cancelled), the reply is stored."""
        parts: list[str] = []
        status = ReplyStatus.PARTIAL
        stored = False
        try:
            try:
                async for delta in self.assistant.stream(turn.turns, turn.passages):
                    parts.append(delta)
                    yield delta
                status = ReplyStatus.COMPLETE
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                log_failure(
                    logger, exc, "support assistant stream failed; storing the fallback reply"
                )
                status = ReplyStatus.DEGRADED
                tail = f"\n\n{FALLBACK_REPLY}" if parts else FALLBACK_REPLY
                parts.append(tail)
                yield tail
            message = self._finished(turn, parts, status)
            stored = True
            await self._store(turn, message, None)
            yield message
        finally:
            if not stored:
                await self._store(turn, self._finished(turn, parts, ReplyStatus.PARTIAL), None)

    def _finished(self, turn: OpenTurn, parts: list[str], status: ReplyStatus) -> ChatMessage:
        text = "".join(parts)
        if status is ReplyStatus.DEGRADED:
            sources = _fallback(turn.passages).sources
        else:
            sources = cited_sources(text, turn.passages)
        return self._message(turn, text, sources, status)


@dataclass(frozen=True, slots=True)
class ReadSupportHistory:
    """A user's own conversations and messages."""

    conversations: ConversationRepository

    async def messages(
        self, user_id: str, conversation_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[ChatMessage]:
        """Raise ``NotFound`` for a conversation that is not the user's."""
        if conversation_id is not None:
            await _own_conversation(self.conversations, conversation_id, user_id)
        return await self.conversations.messages(user_id, conversation_id, cursor, limit)

    async def list(
        self, user_id: str, cursor: Cursor | None, limit: int
    ) -> CursorPage[Conversation]:
        return await self.conversations.conversations(user_id, cursor, limit)


@dataclass(frozen=True, slots=True)
class ReviewSupportChats:
    """Operators read users' conversations in the console; every read is audited."""

    conversations: ConversationRepository
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock

    async def _audit(
        self, operator: Principal, context: RequestContext, target: str | None, **meta: Any
    ) -> None:
        await self.audit.record(
            AuditEvent(
                action="support.conversations_read",
                occurred_at=self.clock.now(),
                context=context,
                actor_user_id=operator.user_id,
                target_type="conversation" if target else "conversations",
                target_id=target,
                metadata=meta,
            )
        )
        await self.uow.commit()

    async def list(
        self,
        operator: Principal,
        user_id: str | None,
        cursor: Cursor | None,
        limit: int,
        context: RequestContext,
    ) -> CursorPage[Conversation]:
        page = await self.conversations.conversations(user_id, cursor, limit)
        await self._audit(operator, context, None, user_id=user_id, count=len(page.items))
        return page

    async def read(
        self,
        operator: Principal,
        conversation_id: str,
        cursor: Cursor | None,
        limit: int,
        context: RequestContext,
    ) -> tuple[Conversation, CursorPage[ChatMessage]]:
        """Raise ``NotFound`` for an unknown conversation."""
        conversation = await self.conversations.get(conversation_id)
        if conversation is None:
            raise _not_found()
        page = await self.conversations.messages(None, conversation_id, cursor, limit)
        await self._audit(operator, context, conversation_id, user_id=conversation.user_id)
        return conversation, page
