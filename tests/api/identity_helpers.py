"""Shared steps for the identity API tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.domain.identity import Role
from orbsurv.main.settings import Settings

PASSWORD = "correct horse battery"
Client = AsyncTestClient[Litestar]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Client, email: str = "ada@example.com") -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: Client, email: str = "ada@example.com", **extra: Any) -> Any:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD, **extra}
    )


async def create_account(app: Litestar, email: str, role: Role) -> str:
    async with app.state.dishka_container() as request:
        use_case = await request.get(CreateUser)
        user = await use_case(CreateUserCommand(email=email, password=PASSWORD, role=role))
    return user.id


async def fetch(settings: Settings, query: str, **params: Any) -> list[sa.Row[Any]]:
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(query), params)).all())
    finally:
        await engine.dispose()
