"""The PostgreSQL pool: no ping per request, but a connection idle long enough is checked."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orbsurv.adapters.persistence import database
from orbsurv.adapters.persistence.database import make_engine


async def _backend_pid(engine: sa.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_only_an_idle_connection_is_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1)
    dialect = engine.sync_engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first
        assert pings == []  # no round trip before each request's own statements
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every checkout counts as idle
        assert await _backend_pid(engine) == first
        assert len(pings) == 1
    finally:
        await engine.dispose()


async def test_an_idle_connection_cut_by_the_server_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url, pool_size=1)
    try:
        cut = await _backend_pid(engine)
        async with make_engine(postgres_url).connect() as admin:
            await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": cut})
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every checkout counts as idle
        replacement = await _backend_pid(engine)  # no error: the dead connection was replaced
        assert replacement != cut
    finally:
        await engine.dispose()
