"""Shared steps for the identity API tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyotp
import sqlalchemy as sa
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.security.passwords import Argon2PasswordHasher
from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.application.identity.ports import PasswordHasher
from orbsurv.application.ports import Clock
from orbsurv.domain.identity import Role
from orbsurv.main.settings import Settings
from tests.fakes.identity import FakeClock

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


async def sign_up(client: Any, email: str = "ada@example.com") -> dict[str, str]:
    answer = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    client.cookies.clear()  # Bearer only
    return bearer(answer.json()["access_token"])


async def sign_up_admin(
    client: Any, settings: Settings, email: str = "root@example.com"
) -> dict[str, str]:
    """Registered over HTTP (the app's own loop owns its connections), then made an admin."""
    await sign_up(client, email)
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE users SET role = 'admin' WHERE email = :email"), {"email": email}
            )
    finally:
        await engine.dispose()
    answer = await login(client, email)
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    return bearer(answer.json()["access_token"])


async def create_account(app: Litestar, email: str, role: Role) -> str:
    async with app.state.dishka_container() as request:
        use_case = await request.get(CreateUser)
        user = await use_case(CreateUserCommand(email=email, password=PASSWORD, role=role))
    return user.id


async def signed_in(
    app: Litestar, client: Client, email: str = "ada@example.com", role: Role = Role.USER
) -> dict[str, str]:
    """An account made through the use case, logged in over HTTP: its bearer header."""
    await create_account(app, email, role)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def fetch(settings: Settings, query: str, **params: Any) -> list[sa.Row[Any]]:
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(query), params)).all())
    finally:
        await engine.dispose()


class WrappedHasher:
    """The real argon2 hasher, for tests that watch or pause its verifications (override
    ``verify`` and call ``self.inner.verify``)."""

    def __init__(self) -> None:
        self.inner = Argon2PasswordHasher()

    @property
    def dummy_hash(self) -> str:
        return self.inner.dummy_hash

    async def hash(self, password: str) -> str:
        return await self.inner.hash(password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.inner.needs_rehash(password_hash)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self.inner.verify(password_hash, password)


class HasherProvider(Provider):
    """Puts a ``WrappedHasher`` in the app: ``make_app(settings, HasherProvider(hasher))``."""

    def __init__(self, hasher: WrappedHasher) -> None:
        super().__init__()
        self.hasher = hasher

    @provide(scope=Scope.APP)
    def password_hasher(self) -> Iterator[PasswordHasher]:
        yield self.hasher
        self.hasher.inner.close()


class ClockProvider(Provider):
    """Puts a ``FakeClock`` in the app: ``make_app(settings, ClockProvider(clock))``; the test
    moves time with ``clock.advance(...)`` instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    @provide(scope=Scope.APP)
    def fake_clock(self) -> Clock:
        return self.clock


# --- one-time codes (RFC 6238) ---------------------------------------------------------------


def wrong_code(totp: pyotp.TOTP, n: int) -> str:
    """A six-digit code that matches none of the steps in the window (n varies it)."""
    now = datetime.now(UTC).timestamp()
    valid = {totp.at(now + shift) for shift in (-60, -30, 0, 30, 60)}
    code = n
    while f"{code % 1_000_000:06d}" in valid:
        code += 1
    return f"{code % 1_000_000:06d}"


def next_code(totp: pyotp.TOTP) -> str:
    """The next step's code: in the window and not yet spent."""
    return totp.at(datetime.now(UTC).timestamp() + 30)


async def enrol(client: Client, auth: dict[str, str]) -> pyotp.TOTP:
    setup = await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth)
    assert setup.status_code == 200, setup.text
    totp = pyotp.TOTP(setup.json()["secret"])
    confirmed = await client.post(
        "/api/v1/auth/otp/confirm", json={"otp": totp.now()}, headers=auth
    )
    assert confirmed.status_code == 200, confirmed.text
    return totp


async def disable(client: Client, auth: dict[str, str], code: str) -> Any:
    return await client.request(
        "DELETE", "/api/v1/auth/otp", json={"password": PASSWORD, "otp": code}, headers=auth
    )
