"""Engine construction and the database readiness probe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orbsurv.adapters.persistence.migrations import SchemaRevisions, current_revisions
from orbsurv.application.ports import DependencyNotReady


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite emits no BEGIN before a SAVEPOINT, so a nested transaction would commit on its
    # own. Take transaction control from the driver and begin explicitly (see ``_sqlite_begin``).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers then wait (busy_timeout)
    # instead of failing at once with "database is locked" when a deferred transaction that
    # has read tries to write after another one committed.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    if is_sqlite(url):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # A fixed pool: overflow connections are closed on return whenever the pool is full, so
    # under sustained load they would be opened again and again; requests beyond the pool wait.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


class DatabaseProbe:
    """Reachable and migrated to the revisions this code needs (`orbsurv migrate` closes a gap)."""

    name = "database"

    def __init__(self, engine: AsyncEngine, schema: SchemaRevisions | None = None) -> None:
        self._engine = engine
        self._schema = schema

    async def check(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            if self._schema is None:
                return
            current = await conn.run_sync(current_revisions)
        gap = self._schema.gap(current)
        if gap is not None:
            raise DependencyNotReady(f"{gap}; run `orbsurv migrate`")
