from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv import __version__
from orbsurv.adapters.persistence.migrations import upgrade
from orbsurv.main.app import make_app
from tests.conftest import SettingsFactory
from tests.services import free_port


async def test_liveness_and_its_alias(client: AsyncTestClient[Litestar]) -> None:
    for path in ("/api/v1/healthz", "/health"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "version": __version__}


async def test_ready_with_the_embedded_defaults(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "cache": "ok", "storage": "ok"},
    }


async def test_not_ready_names_the_failing_dependencies(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("storage cannot live inside a file")
    settings = make_settings(
        UPLOAD_ROOT=str(blocked / "uploads"), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    async with AsyncTestClient(make_app(settings)) as client:
        response = await client.get("/api/v1/readyz")
        liveness = await client.get("/api/v1/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "dependency_unavailable"
    assert body["checks"] == {"database": "ok", "cache": "unavailable", "storage": "unavailable"}
    assert "cache" in body["detail"]
    assert "storage" in body["detail"]
    assert liveness.status_code == 200  # liveness never depends on anything


async def test_not_ready_when_the_database_is_gone(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"
    )
    async with AsyncTestClient(make_app(settings)) as client:
        response = await client.get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


async def test_not_ready_on_a_database_behind_the_code(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """A database that was never migrated (or is a revision behind) names `orbsurv migrate`."""
    from orbsurv.adapters.persistence.migrations import downgrade

    url = f"sqlite+aiosqlite:///{tmp_path}/behind.db"
    settings = make_settings(DATABASE_URL=url)
    async with AsyncTestClient(make_app(settings)) as client:
        empty = await client.get("/api/v1/readyz")
        await asyncio.to_thread(upgrade, url)
        current = await client.get("/api/v1/readyz")
        await asyncio.to_thread(downgrade, url, "-1")
        behind = await client.get("/api/v1/readyz")
    assert empty.status_code == 503
    assert "no revision" in empty.json()["checks"]["database"]
    assert "orbsurv migrate" in empty.json()["detail"]
    assert current.status_code == 200, current.text
    assert behind.status_code == 503
    assert "run `orbsurv migrate`" in behind.json()["checks"]["database"]


async def test_a_readiness_probe_writes_no_log_line(
    client: AsyncTestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    # Orchestrators probe every few seconds: reading the schema revision must not log
    # Alembic's "Context impl SQLiteImpl." and "Will assume non-transactional DDL." each time.
    await client.get("/api/v1/readyz")  # the first probe may warm caches
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = await client.get("/api/v1/readyz")
    assert response.status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
