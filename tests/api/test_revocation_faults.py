"""Authenticate when neither the denylist mirror nor the database can answer: 503, never a 500
and never "let it through"."""

from __future__ import annotations

from dishka import Provider, Scope, provide
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from orbsurv.adapters.persistence.sessions import SqlSessionRevocations, SqlSessionStatus
from orbsurv.application.identity.ports import SessionRevocations, SessionStatus
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import bearer, register
from tests.api.test_conventions import assert_problem
from tests.services import free_port


class DatabaseGoneProvider(Provider):
    """Revocations read from a database that refuses connections (nothing listens there)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine

    @provide(scope=Scope.APP, override=True)
    def status(self) -> SessionStatus:
        return SqlSessionStatus(self.engine)

    @provide(scope=Scope.APP, override=True)
    def revocations(self) -> SessionRevocations:
        return SqlSessionRevocations(self.engine)


async def test_an_unsynced_worker_without_its_database_answers_503(settings: Settings) -> None:
    gone = create_async_engine(f"sqlite+aiosqlite:///{free_port()}/no/such/dir/x.db")
    try:
        app = make_app(settings, DatabaseGoneProvider(gone))
        async with AsyncTestClient(app) as client:
            token = (await register(client))["access_token"]
            client.cookies.clear()
            answer = await client.get("/api/v1/users/me", headers=bearer(token))
        assert_problem(answer, 503, "dependency_unavailable")
        assert "sqlite" not in answer.text.lower()
    finally:
        await gone.dispose()
