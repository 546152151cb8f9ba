"""AnswerSupport with in-memory ports: every way a reply ends is stored, with the right status."""

from __future__ import annotations

from orbsurv.application.support.chat import AnswerSupport, OpenTurn
from orbsurv.domain.support import (
    FALLBACK_REPLY,
    ChatMessage,
    Passage,
    ReplyStatus,
    Speaker,
    Turn,
)
from tests.fakes.identity import FakeClock
from tests.fakes.support import MemorySupportReplies, ScriptedAssistant

TURN = OpenTurn(
    conversation_id="c1",
    message_id="m1",
    reply_id="r1",
    user_id="u1",
    turns=(Turn(Speaker.USER, "question"),),
    passages=(Passage("reset-your-password", "Reset", "text", 1.0),),
    prompt_tokens=300,
    reserved_tokens=812,
    day="2026-01-01",
)


def answer(assistant: ScriptedAssistant, replies: MemorySupportReplies) -> AnswerSupport:
    return AnswerSupport(assistant=assistant, replies=replies, clock=FakeClock())


async def test_a_complete_stream() -> None:
    replies = MemorySupportReplies()
    items = [i async for i in answer(ScriptedAssistant(["a", "b"]), replies).stream(TURN)]
    assert items[:2] == ["a", "b"]
    done = items[-1]
    assert isinstance(done, ChatMessage)
    assert (done.id, done.text, done.status) == ("r1", "ab", ReplyStatus.COMPLETE)
    assert done.sources == ("reset-your-password",)
    [(stored, settlement)] = replies.stored
    assert stored is done
    assert settlement.reserved == 812
    assert settlement.used == 300 + 1  # the prompt plus the reply's estimate


async def test_a_failure_mid_stream_is_degraded_and_hides_the_cause() -> None:
    replies = MemorySupportReplies()
    assistant = ScriptedAssistant(["a", "b", "c"], fail_after=2)
    items = [i async for i in answer(assistant, replies).stream(TURN)]
    done = items[-1]
    assert isinstance(done, ChatMessage)
    assert done.status is ReplyStatus.DEGRADED
    assert done.text == f"ab\n\n{FALLBACK_REPLY}"
    assert "SECRET" not in done.text
    assert len(replies.stored) == 1


async def test_a_consumer_that_stops_leaves_a_partial_reply() -> None:
    replies = MemorySupportReplies()
    stream = answer(ScriptedAssistant(["a", "b", "c"]), replies).stream(TURN)
    assert await anext(stream) == "a"
    assert await anext(stream) == "b"
    await stream.aclose()  # the client went away
    [(stored, _)] = replies.stored
    assert (stored.text, stored.status) == ("ab", ReplyStatus.PARTIAL)


async def test_a_failed_reply_stores_the_fallback() -> None:
    replies = MemorySupportReplies()
    message = await answer(ScriptedAssistant(["x"], fail_after=0), replies)(TURN)
    assert (message.text, message.status) == (FALLBACK_REPLY, ReplyStatus.DEGRADED)
    assert message.sources == ("reset-your-password",)
    assert replies.stored[0][0] is message
