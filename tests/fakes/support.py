"""In-memory twins of the support chat ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from orbsurv.application.support.ports import AssistantUnavailable, Settlement
from orbsurv.domain.support import AssistantReply, ChatMessage, Passage, Turn


class ScriptedAssistant:
    """Streams ``deltas``; raises ``AssistantUnavailable`` after ``fail_after`` of them."""

    def __init__(self, deltas: Sequence[str], fail_after: int | None = None) -> None:
        self.deltas = list(deltas)
        self.fail_after = fail_after

    async def reply(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AssistantReply:
        if self.fail_after is not None:
            raise AssistantUnavailable("scripted failure with SECRET detail")
        return AssistantReply("".join(self.deltas), ())

    async def stream(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AsyncIterator[str]:
        for position, delta in enumerate(self.deltas):
            if position == self.fail_after:
                raise AssistantUnavailable("scripted failure with SECRET detail")
            yield delta


class MemorySupportReplies:
    def __init__(self) -> None:
        self.stored: list[tuple[ChatMessage, Settlement]] = []

    async def record(self, reply: ChatMessage, settlement: Settlement) -> None:
        self.stored.append((reply, settlement))
