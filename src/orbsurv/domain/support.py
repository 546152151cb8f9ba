"""Support chat: conversations between a signed-in user and the support assistant.

Both sides of every exchange are stored. The assistant sees the recent turns that fit a token
budget (newest kept, oldest dropped first) and the knowledge-base passages retrieved for the
question; its reply names the resources it drew on. A reply is ``complete``, ``partial`` (the
stream stopped early, e.g. the client went away) or ``degraded`` (the assistant failed and a
fixed fallback was stored instead; the upstream's own error text is never shown).

Token counts are estimates of four characters per token, the rule of thumb OpenAI documents for
English text ("What are tokens and how to count them?"), used when the model reports no usage.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

MESSAGE_MAX_LENGTH = 4000
CHARS_PER_TOKEN = 4
FALLBACK_REPLY = (
    "Sorry, the support assistant cannot answer right now. Your message is saved; please try "
    "again in a few minutes, or browse the knowledge base."
)
NO_MATCH_REPLY = (
    "I could not find anything about that in the Orbsurv knowledge base. Try other words, or "
    "ask a person through the contact form."
)


class Speaker(enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"


class ReplyStatus(enum.Enum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    DEGRADED = "degraded"


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` costs, estimated at four characters per token (at least 1)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


USAGE_OVERRUN_FACTOR = 2


def settled_tokens(reported: int | None, reserved: int, estimated: int) -> int:
    """Tokens a finished turn is charged, given the upstream's reported ``usage.total_tokens``
    (``None`` when it reported none: then ``estimated``, the prompt estimate plus the reply's
    estimate) and the ``reserved`` worst case.

    The figure comes from outside and is bounded to ``0..USAGE_OVERRUN_FACTOR * reserved``: a
    negative count would hand back more than was reserved (a user's whole day reset), an
    absurd one (2**63 - 1) would overflow the usage counter. Twice the reservation leaves room
    for a real tokenizer counting more than the four-characters-per-token estimate (dense
    scripts, code) while one turn can never charge more than two turns' worth."""
    charged = estimated if reported is None else reported
    return max(0, min(charged, USAGE_OVERRUN_FACTOR * max(reserved, 0)))


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: Speaker
    text: str


def recent_turns(turns: Sequence[Turn], budget_tokens: int) -> list[Turn]:
    """The newest turns whose estimated tokens fit ``budget_tokens``, oldest first.

    Turns are dropped from the old end; the newest turn (the question) is always kept, cut to the
    budget if it alone is larger."""
    kept: list[Turn] = []
    spent = 0
    for turn in reversed(turns):
        cost = estimate_tokens(turn.text)
        if kept and spent + cost > budget_tokens:
            break
        if not kept and cost > budget_tokens:
            kept.append(Turn(turn.speaker, turn.text[: budget_tokens * CHARS_PER_TOKEN]))
            break
        kept.append(turn)
        spent += cost
    return list(reversed(kept))


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of a published resource that matched a question."""

    slug: str
    title: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class AssistantReply:
    text: str
    sources: tuple[str, ...]
    tokens: int | None = None  # as the model reported; ``None`` means estimate


def cited_sources(text: str, passages: Sequence[Passage]) -> tuple[str, ...]:
    """The slugs of the passages a reply names (as whole words), in passage order; every passage
    offered when the reply names none (it was still given them as its only material)."""
    offered = list(dict.fromkeys(passage.slug for passage in passages))
    named = tuple(
        slug
        for slug in offered
        if re.search(rf"(?<![a-z0-9-]){re.escape(slug)}(?![a-z0-9-])", text, re.IGNORECASE)
    )
    return named or tuple(offered)


@dataclass(slots=True)
class Conversation:
    user_id: str
    title: str
    created_at: datetime
    updated_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(slots=True)
class ChatMessage:
    conversation_id: str
    user_id: str
    speaker: Speaker
    text: str
    created_at: datetime
    sources: tuple[str, ...] = ()
    status: ReplyStatus = ReplyStatus.COMPLETE
    tokens: int = 0
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def conversation_title(first_message: str) -> str:
    """A conversation is named after the start of its first message (at most 80 characters)."""
    words = " ".join(first_message.split())
    return words if len(words) <= 80 else words[:79].rstrip() + "…"


def seconds_until_next_day(now: datetime) -> int:
    """Seconds until the next UTC midnight, when daily budgets start again (at least 1)."""
    current = now.astimezone(UTC)
    tomorrow = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - current).total_seconds()))
