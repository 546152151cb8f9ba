"""The use cases a client or a model paces hold no transaction while they wait: the project upload
streams its bytes, and the support chat retrieves passages, between short transactions only."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from orbsurv.adapters.cache.memory import MemoryRateLimiter
from orbsurv.application.files.ports import Cleanup, FilesWork, QuotaUsage
from orbsurv.application.files.projects import FilesPolicy, NewProject, UploadProject, Viewer
from orbsurv.application.ports import ScanVerdict, StoredObject
from orbsurv.application.support.chat import AskSupport, ChatPolicy, SupportQuestion
from orbsurv.application.support.ports import SupportWork
from orbsurv.domain.support import ChatMessage, Conversation, Passage
from tests.fakes.identity import FakeClock, FakeUnitOfWork, Recorder


@dataclass
class Transactions:
    """Counts the transactions open now; ``build`` makes each one's repositories."""

    build: Any
    open: int = 0
    opened: int = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        self.open += 1
        self.opened += 1
        try:
            yield self.build()
        finally:
            self.open -= 1


# --- project upload -------------------------------------------------------------------------


@dataclass
class Books:
    projects: list[Any] = field(default_factory=list)
    reserved: int = 0
    used: int = 0
    markers: set[str] = field(default_factory=set)


class Quota:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def reserve(self, user_id: str, size: int) -> QuotaUsage:
        self.books.reserved += size
        return QuotaUsage(self.books.used, self.books.reserved, 10**9)

    async def commit(self, user_id: str, reserved: int, stored: int) -> None:
        self.books.reserved -= reserved
        self.books.used += stored

    async def release(self, user_id: str, reserved: int) -> None:
        self.books.reserved -= reserved


class Cleanups:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def add(self, cleanup: Cleanup) -> None:
        self.books.markers.add(cleanup.object_key)

    async def remove(self, object_key: str) -> bool:
        found = object_key in self.books.markers
        self.books.markers.discard(object_key)
        return found


class Projects:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def add(self, project: Any) -> None:
        self.books.projects.append(project)


class CleanScanner:
    async def open(self) -> CleanScanner:
        return self

    async def feed(self, chunk: bytes) -> None:
        pass

    async def finish(self) -> ScanVerdict:
        return ScanVerdict()

    async def abort(self) -> None:
        pass


class WatchingStorage:
    """Stores nothing; checks that no transaction is open while each chunk arrives."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self.deleted: list[str] = []

    async def put(self, key: str, chunks: AsyncIterable[bytes], **_: Any) -> StoredObject:
        size = 0
        async for chunk in chunks:
            assert self.transactions.open == 0, "a transaction is open while bytes stream"
            size += len(chunk)
        return StoredObject(key=key, size=size, sha256="0" * 64)

    async def delete(self, key: str) -> None:
        self.deleted.append(key)


def upload_case() -> tuple[UploadProject, Transactions, Books, WatchingStorage]:
    books = Books()
    transactions = Transactions(
        lambda: FilesWork(
            projects=Projects(books),  # type: ignore[arg-type]
            quota=Quota(books),  # type: ignore[arg-type]
            cleanups=Cleanups(books),  # type: ignore[arg-type]
            audit=Recorder(),  # type: ignore[arg-type]
            uow=FakeUnitOfWork(),
        )
    )
    storage = WatchingStorage(transactions)
    use_case = UploadProject(
        transactions=transactions,
        storage=storage,  # type: ignore[arg-type]
        scanner=CleanScanner(),  # type: ignore[arg-type]
        clock=FakeClock(),
        policy=FilesPolicy(),
        limiter=MemoryRateLimiter(),
    )
    return use_case, transactions, books, storage


NEW = NewProject(
    name="demo", description="", version=None, is_public=False, file_name="a.bin", declared_size=6
)


async def test_an_upload_streams_between_two_short_transactions() -> None:
    use_case, transactions, books, _ = upload_case()

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    project = await use_case(Viewer("u1"), NEW, body())
    assert project.size == 6
    assert transactions.opened == 2  # the reservation before, the row after
    assert transactions.open == 0
    assert (len(books.projects), books.reserved, books.used, books.markers) == (1, 0, 6, set())


async def test_a_body_that_fails_mid_stream_leaves_nothing_and_no_transaction_open() -> None:
    use_case, transactions, books, storage = upload_case()

    class Stalled(Exception):
        pass

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        raise Stalled

    with pytest.raises(Stalled):
        await use_case(Viewer("u1"), NEW, body())
    assert transactions.open == 0
    assert (books.projects, books.reserved, books.markers) == ([], 0, set())
    assert len(storage.deleted) == 1


# --- support chat -----------------------------------------------------------------------------


class Conversations:
    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.conversations: list[Conversation] = []

    async def add(self, conversation: Conversation) -> None:
        self.conversations.append(conversation)

    async def add_message(self, message: ChatMessage) -> None:
        self.messages.append(message)


class Budget:
    async def reserve(self, user_id: str, day: str, tokens: int, limit: int) -> bool:
        return True


class WatchingRetriever:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def search(self, query: str, limit: int) -> list[Passage]:
        assert self.transactions.open == 0, "retrieval ran inside the question's transaction"
        return [Passage("reset-your-password", "Reset", "text", 1.0)]


async def test_a_question_is_stored_in_one_short_transaction_after_retrieval() -> None:
    conversations = Conversations()
    uow = FakeUnitOfWork()
    transactions = Transactions(
        lambda: SupportWork(conversations=conversations, budget=Budget(), uow=uow)  # type: ignore[arg-type]
    )
    ask = AskSupport(
        transactions=transactions,
        retriever=WatchingRetriever(transactions),
        limiter=MemoryRateLimiter(),
        clock=FakeClock(),
        policy=ChatPolicy(),
    )
    turn = await ask(SupportQuestion("u1", "How do I reset my password?"))
    assert transactions.opened == 1
    assert transactions.open == 0
    assert [m.id for m in conversations.messages] == [turn.message_id]
    assert uow.commits == 1
