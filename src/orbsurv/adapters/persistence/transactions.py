"""``SqlTransactions``: short transactions for use cases that must not hold a request's connection.

A use case that waits on something slow between two database steps (a client streaming an
upload, a model writing a reply) cannot take the request's connection: it would hold a pooled
connection for as long as the slow thing takes, and the pool (20 by default) would run dry for
everybody. It takes this instead: each ``async with transactions() as work:`` checks one
connection out, builds the context's repositories on it, and checks it back in when the block
ends, rolling back what ``work.uow`` did not commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

W = TypeVar("W")


class SqlTransactions(Generic[W]):
    def __init__(self, engine: AsyncEngine, build: Callable[[AsyncConnection], W]) -> None:
        self._engine = engine
        self._build = build

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[W]:
        async with self._engine.connect() as connection:
            yield self._build(connection)  # closing rolls back anything not committed
