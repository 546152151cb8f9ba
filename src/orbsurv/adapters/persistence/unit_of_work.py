from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class SqlUnitOfWork:
    """The request's transaction. The connection's owner rolls back whatever is not committed."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def commit(self) -> None:
        await self._connection.commit()

    async def rollback(self) -> None:
        await self._connection.rollback()
