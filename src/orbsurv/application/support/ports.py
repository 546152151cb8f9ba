"""Ports of support chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from orbsurv.application.ports import UnitOfWork
from orbsurv.domain.pagination import Cursor, CursorPage
from orbsurv.domain.support import AssistantReply, ChatMessage, Conversation, Passage, Turn


class AssistantUnavailable(Exception):
    """The assistant could not answer (timeout, refusal, malformed answer). The message is for
    logs only; users see the fixed fallback reply."""


class SupportAssistant(Protocol):
    """Answers a support question from the conversation so far and the passages retrieved for it.

    ``conversation`` is oldest first and ends with the user's question; it already fits the
    history token budget. Raise ``AssistantUnavailable`` when no answer can be given."""

    async def reply(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AssistantReply: ...

    def stream(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AsyncIterator[str]:
        """The reply as text deltas, in order; raise ``AssistantUnavailable`` mid-way if the
        source fails."""
        ...


class PassageRetriever(Protocol):
    async def search(self, query: str, limit: int) -> list[Passage]:
        """At most ``limit`` passages of published resources, best first, one per resource;
        empty when nothing matches."""
        ...


class ConversationRepository(Protocol):
    """Conversations and messages in the request's transaction."""

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def add(self, conversation: Conversation) -> None: ...

    async def add_message(self, message: ChatMessage) -> None:
        """Store a message and move its conversation's ``updated_at`` to its time."""
        ...

    async def recent(self, conversation_id: str, limit: int) -> list[ChatMessage]:
        """The newest ``limit`` messages of a conversation, oldest first."""
        ...

    async def messages(
        self, user_id: str | None, conversation_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[ChatMessage]:
        """Newest first by keyset; ``None`` filters mean any."""
        ...

    async def conversations(
        self, user_id: str | None, cursor: Cursor | None, limit: int
    ) -> CursorPage[Conversation]:
        """Newest first (by creation) by keyset; ``user_id=None`` means every user's."""
        ...


class TokenBudget(Protocol):
    async def reserve(self, user_id: str, day: str, tokens: int, limit: int) -> bool:
        """Add ``tokens`` to the user's count for ``day`` (``YYYY-MM-DD``, UTC) in one
        conditional statement that succeeds only while the sum stays within ``limit``; ``False``
        (and nothing counted) otherwise. Never read-then-write."""
        ...


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a finished reply costs against what was reserved for it."""

    user_id: str
    day: str
    reserved: int
    used: int


class SupportReplies(Protocol):
    """Stores a finished reply in a transaction of its own: it runs after the request's
    transaction has ended (a stream outlives its handler)."""

    async def record(self, reply: ChatMessage, settlement: Settlement) -> None:
        """Store the reply and give back to the budget what was reserved but not used."""
        ...


@dataclass(frozen=True, slots=True)
class SupportWork:
    """The chat's repositories on one transaction (``SupportTransactions``)."""

    conversations: ConversationRepository
    budget: TokenBudget
    uow: UnitOfWork


class SupportTransactions(Protocol):
    """Short transactions: ``async with transactions() as work:`` takes one pooled connection
    and gives it back when the block ends; what ``work.uow`` did not commit is rolled back. A
    question is stored in one, its reply (``SupportReplies``) in another, and no connection is
    held while the model writes."""

    def __call__(self) -> AbstractAsyncContextManager[SupportWork]: ...
