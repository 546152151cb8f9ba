"""Engine construction and the database readiness probe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orbsurv.adapters.persistence.migrations import SchemaRevisions, current_revisions
from orbsurv.application.errors import DatabaseUnavailable
from orbsurv.application.ports import DependencyNotReady


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite emits no BEGIN before a SAVEPOINT, so a nested transaction would commit on its
    # own. Take transaction control from the driver and begin explicitly (see ``_sqlite_begin``).
    dbapi_connection.isolation_level = None
    # SQLite's own lower() folds ASCII only (lower('ÉCOLE') is 'École'), PostgreSQL's folds every
    # letter: case-insensitive filters and searches (lower(column) = / LIKE lower(term)) would
    # find 'École' by 'école' on one database and not the other. Python's str.lower is the
    # Unicode default case mapping, as PostgreSQL's under a UTF-8 ctype.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


READS_ONLY = "orbsurv_reads_only"


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers then wait (busy_timeout)
    # instead of failing at once with "database is locked" when a deferred transaction that
    # has read tries to write after another one committed. A connection that only reads must
    # not: SQLite's busy handler polls with sleeps of up to 100 ms and no queue, so readers
    # lined up behind the one write lock wait up to seconds under load. In WAL mode a deferred
    # read transaction never waits for a writer.
    if connection.get_execution_options().get(READS_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def reads_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for connections that never write.

    On SQLite their transactions begin DEFERRED, so they never queue for the write lock (a
    write on such a connection may fail with "database is locked"); elsewhere nothing changes.
    """
    return engine.execution_options(**{READS_ONLY: True})


def ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 3.0,
    connect_timeout: float = 5.0,
    statement_timeout: float = 15.0,
) -> AsyncEngine:
    """An engine whose errors never quote the values a statement was bound with.

    On PostgreSQL every wait is bounded (seconds): ``connect_timeout`` for opening a connection
    (TCP, TLS and start-up), ``pool_timeout`` for a checkout from the fixed pool of
    ``pool_size`` connections, and ``statement_timeout`` for one statement: the server cancels
    it (``statement_timeout``, SQLSTATE 57014) and, should the server not answer at all, the
    client gives up one second later (asyncpg ``command_timeout``) and the connection is
    discarded. A failure to connect or a client-side timeout raises ``DatabaseUnavailable``
    (see ``_translate_connect`` and ``_translate_statement_error``); the errors SQLAlchemy
    wraps itself are classified at the HTTP edge (``adapters/http/problems.py``). SQLite keeps
    its busy timeout (15 s) and ignores these bounds.
    """
    if is_sqlite(url):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # A fixed pool: overflow connections are closed on return whenever the pool is full, so
    # under sustained load they would be opened again and again; requests beyond the pool wait.
    engine = create_async_engine(
        url,
        hide_parameters=True,  # bound values (hashes, secrets) never enter exception text
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        # Last in, first out: the few connections a steady load needs stay hot (their prepared
        # statements cached) and the rest of the pool stays idle, instead of every checkout
        # rotating through the whole pool after one burst.
        pool_use_lifo=True,
        connect_args={
            "timeout": connect_timeout,
            "command_timeout": statement_timeout + 1.0,
            "server_settings": {"statement_timeout": str(max(1, round(statement_timeout * 1000)))},
        },
    )
    event.listen(engine.sync_engine, "do_connect", _translate_connect)
    event.listen(engine.sync_engine, "handle_error", _translate_statement_error)
    event.listen(engine.sync_engine.pool, "connect", _mark_idle)
    event.listen(engine.sync_engine.pool, "checkin", _mark_idle)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle(engine))
    return engine


#: SQLSTATEs PostgreSQL refuses a new connection with: too many connections (53300), the server
#: starting up or shutting down (57P01..57P03), out of memory or disk (53xxx).
_REFUSED_CLASSES = ("53", "57", "08")


def _translate_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a DBAPI connection; a refusal, a reset or no answer within the connect timeout
    becomes ``DatabaseUnavailable`` (asyncpg raises them as bare ``OSError`` and
    ``TimeoutError``, which SQLAlchemy passes through unwrapped)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailable("The database cannot be reached; try again shortly.") from exc
    except Exception as exc:
        state = str(getattr(exc, "sqlstate", None) or "")
        if state.startswith(_REFUSED_CLASSES):
            raise DatabaseUnavailable(
                "The database refused a connection; try again shortly."
            ) from exc
        raise


def _translate_statement_error(context: Any) -> BaseException | None:
    """A statement that raised a bare ``TimeoutError`` (asyncpg's ``command_timeout``: the
    server did not answer) or ``OSError`` (the socket broke) becomes ``DatabaseUnavailable``,
    and its connection is discarded: its state is unknown."""
    original = context.original_exception
    if isinstance(original, DatabaseUnavailable):
        return None
    if isinstance(original, TimeoutError | OSError):
        context.is_disconnect = True
        return DatabaseUnavailable("The database did not answer in time; try again shortly.")
    return None


IDLE_PING_SECONDS = 5.0


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: AsyncEngine) -> Any:
    """Pre-ping a pooled connection only when it has sat idle for ``IDLE_PING_SECONDS``.

    A connection that was in use a moment ago is alive; pinging it on every checkout
    (``pool_pre_ping``) cost a round trip per request. One idle for longer may have been cut by
    a server restart or a proxy, so it is pinged, and replaced when the ping fails (raising
    ``DisconnectionError`` from a checkout hook makes the pool retry with a fresh connection).
    A connection that breaks within the window fails its request, and SQLAlchemy then
    invalidates the rest of the pool.
    """
    dialect = engine.sync_engine.dialect

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc

    return checkout


class DatabaseProbe:
    """Reachable and migrated to the revisions this code needs (`orbsurv migrate` closes a gap)."""

    name = "database"

    def __init__(self, engine: AsyncEngine, schema: SchemaRevisions | None = None) -> None:
        self._engine = reads_only(engine)
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


#: SQLSTATE classes that mean the database, not the statement, failed: connection exception
#: (08), insufficient resources such as too many connections or a full disk (53), operator
#: intervention such as ``statement_timeout`` (57014), shutdown or start-up (57P01..57P03),
#: and system errors (58). Serialization failures and deadlocks (40001, 40P01) are transient
#: too: the transaction was rolled back and a retry can succeed.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether an exception SQLAlchemy raised means the database (not our statement) failed.

    True for ``OperationalError`` (SQLite's "database is locked", PostgreSQL's operational
    failures), ``InterfaceError`` (a connection asyncpg found closed), a pool checkout that
    waited ``DB_POOL_TIMEOUT_SECONDS`` (``sqlalchemy.exc.TimeoutError``), any DBAPI error on a
    connection SQLAlchemy invalidated as disconnected, and PostgreSQL errors whose SQLSTATE
    names the server's condition (``_UNAVAILABLE_SQLSTATE_CLASSES``, ``_TRANSIENT_SQLSTATES``).
    Anything else (a constraint we broke, bad SQL) is our bug and stays a 500.
    """
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES) or state in _TRANSIENT_SQLSTATES
