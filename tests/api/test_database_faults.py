"""PostgreSQL failing under a request: reset, black-holed, refusing (53300), pool exhausted,
statement timeout. Each is a 503 ``dependency_unavailable`` naming the database, with
``Retry-After``, answered within the configured bounds, and the next request after the fault
ends succeeds without a restart."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.migrations import upgrade
from orbsurv.main.app import make_app
from tests.api.identity_helpers import sign_up
from tests.api.test_conventions import assert_problem
from tests.conftest import (
    POSTGRES_ADMIN_DSN,
    SettingsFactory,
    create_postgres_database,
    drop_postgres_database,
)
from tests.fault_proxy import FaultProxy, black_hole
from tests.services import POSTGRES_HOST, POSTGRES_PORT, free_port, require

SESSIONS = "/api/v1/auth/sessions"
#: Small bounds so a hung database is noticed quickly here (seconds).
FAST = {
    "DB_CONNECT_TIMEOUT_SECONDS": "1",
    "DB_STATEMENT_TIMEOUT_SECONDS": "1",
    "DB_POOL_TIMEOUT_SECONDS": "1",
    "DB_POOL_SIZE": "2",
}


def _behind(proxy: FaultProxy, url: str) -> str:
    return url.replace(f":{POSTGRES_PORT}/", f":{proxy.port}/")


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    require("postgres")
    with FaultProxy(POSTGRES_HOST, POSTGRES_PORT) as server:
        yield server


def assert_database_503(response: Any) -> None:
    body = assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["retry-after"] == "1"
    assert "database" in body["detail"]
    for leak in ("asyncpg", "Error", "too many", "53300", "sqlstate", "127.0.0.1"):
        assert leak not in body["detail"], body["detail"]


async def test_a_reset_connection_is_503_and_the_next_request_heals(
    make_settings: SettingsFactory, postgres_url: str, proxy: FaultProxy
) -> None:
    settings = make_settings(DATABASE_URL=_behind(proxy, postgres_url), **FAST)
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client, f"{uuid.uuid4().hex[:8]}@example.com")
        assert (await client.get(SESSIONS, headers=auth)).status_code == 200
        proxy.set_mode("reset")  # PostgreSQL resets every pooled connection
        proxy.set_mode("pass")
        assert_database_503(await client.get(SESSIONS, headers=auth))
        healed = await client.get(SESSIONS, headers=auth)
        assert healed.status_code == 200, healed.text


async def test_a_refused_connection_is_503_until_the_database_is_back(
    make_settings: SettingsFactory, postgres_url: str, proxy: FaultProxy
) -> None:
    settings = make_settings(DATABASE_URL=_behind(proxy, postgres_url), **FAST)
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_up(client, f"{uuid.uuid4().hex[:8]}@example.com")
        proxy.set_mode("refuse")  # open connections reset, new ones refused
        for _ in range(2):  # the broken pooled connection, then a refused new one
            assert_database_503(await client.get(SESSIONS, headers=auth))
        proxy.set_mode("pass")
        healed = await client.get(SESSIONS, headers=auth)
        assert healed.status_code == 200, healed.text


async def test_a_black_holed_database_is_503_within_the_bounds(
    make_settings: SettingsFactory, postgres_url: str, proxy: FaultProxy
) -> None:
    """Packets dropped, connections open: the statement's client-side bound answers (statement
    timeout + 1 s), and new connections give up after the connect timeout."""
    settings = make_settings(DATABASE_URL=_behind(proxy, postgres_url), **FAST)
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client, f"{uuid.uuid4().hex[:8]}@example.com")
        proxy.set_mode("blackhole")
        for _ in range(2):  # a pooled connection, then a new one
            started = time.monotonic()
            async with asyncio.timeout(30):
                response = await client.get(SESSIONS, headers=auth)
            assert_database_503(response)
            assert time.monotonic() - started < 6
        proxy.set_mode("pass")
        healed = await client.get(SESSIONS, headers=auth)
        assert healed.status_code == 200, healed.text


async def test_an_unreachable_database_is_503(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    with black_hole() as hole:
        for port in (free_port(), hole.port):  # refused, then accepted and never answered
            url = postgres_url.replace(f":{POSTGRES_PORT}/", f":{port}/")
            settings = make_settings(DATABASE_URL=url, **FAST)
            async with AsyncTestClient(make_app(settings)) as client:
                started = time.monotonic()
                response = await client.post(
                    "/api/v1/auth/login", json={"email": "a@example.com", "password": "x" * 12}
                )
                assert_database_503(response)
                assert time.monotonic() - started < 5


async def test_an_exhausted_pool_is_503_after_the_pool_timeout(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    settings = make_settings(DATABASE_URL=postgres_url, **{**FAST, "DB_POOL_SIZE": "1"})
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_up(client, f"{uuid.uuid4().hex[:8]}@example.com")
        engine = await app.state.dishka_container.get(AsyncEngine)
        holding = threading.Event()

        async def hold() -> None:  # the pool's only connection, in the app's own loop
            async with engine.connect() as held:
                await held.execute(sa.text("SELECT 1"))
                holding.set()
                await asyncio.sleep(60)

        holder = client.blocking_portal.start_task_soon(hold)
        assert holding.wait(10)
        started = time.monotonic()
        response = await client.get(SESSIONS, headers=auth)
        assert_database_503(response)
        assert 0.9 < time.monotonic() - started < 4
        holder.cancel()
        assert (await client.get(SESSIONS, headers=auth)).status_code == 200


@pytest.fixture
async def limited_database() -> AsyncIterator[tuple[str, str]]:
    """A migrated throwaway database and a login role without superuser rights (superusers
    ignore connection limits): ``(database name, URL as that role)``."""
    require("postgres")
    name, url = await create_postgres_database()
    role = f"orbsurv_limited_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await asyncio.to_thread(upgrade, url)
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        owner = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await owner.execute(
                f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}";'
                f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}";'
                f'GRANT USAGE ON SCHEMA public TO "{role}"'
            )
        finally:
            await owner.close()
        yield name, url.replace("postgres@", f"{role}@")
    finally:
        await drop_postgres_database(name)
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_too_many_clients_is_503_and_heals(
    make_settings: SettingsFactory, limited_database: tuple[str, str]
) -> None:
    """SQLSTATE 53300 (too many connections) on a new connection."""
    name, url = limited_database
    settings = make_settings(DATABASE_URL=url, **FAST)
    app = make_app(settings)
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        async with AsyncTestClient(app) as client:
            auth = await sign_up(client, "limited@example.com")
            engine = await app.state.dishka_container.get(AsyncEngine)
            await admin.execute(f'ALTER DATABASE "{name}" CONNECTION LIMIT 0')
            # the next request needs a new connection (the pool lives in the app's loop)
            client.blocking_portal.call(engine.dispose)
            assert_database_503(await client.get(SESSIONS, headers=auth))
            assert_database_503(await client.get("/api/v1/users/me", headers=auth))
            await admin.execute(f'ALTER DATABASE "{name}" CONNECTION LIMIT -1')
            healed = await client.get(SESSIONS, headers=auth)
            assert healed.status_code == 200, healed.text
    finally:
        await admin.close()


async def test_a_database_fault_logs_one_line_without_driver_text(
    make_settings: SettingsFactory,
    postgres_url: str,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(DATABASE_URL=_behind(proxy, postgres_url), **FAST)
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client, f"{uuid.uuid4().hex[:8]}@example.com")
        proxy.set_mode("reset")
        proxy.set_mode("pass")
        with caplog.at_level(logging.WARNING, logger="orbsurv"):
            assert_database_503(await client.get(SESSIONS, headers=auth))
    records = [r for r in caplog.records if r.name.startswith("orbsurv")]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None
    assert "database" in records[0].getMessage()
