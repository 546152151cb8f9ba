"""Sessions end: no refresh extends a session past its absolute lifetime from the sign-in
(``SESSION_ABSOLUTE_LIFETIME_HOURS``), and a dev-scope session ends after
``DEV_SESSION_REAUTH_HOURS``, so its second factor must be presented again. Time moves with the
app's clock port, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    Client,
    ClockProvider,
    bearer,
    enrol,
    fetch,
    login,
    register,
)
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, truncate_all
from tests.fakes.identity import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def lived(
    database_url: str, make_settings: SettingsFactory, clock: FakeClock
) -> AsyncIterator[tuple[Client, Any, Settings]]:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(
        DATABASE_URL=database_url,
        SESSION_ABSOLUTE_LIFETIME_HOURS="2",
        REFRESH_TOKEN_EXPIRE_MINUTES="60",
    )
    app = make_app(settings, ClockProvider(clock))
    async with AsyncTestClient(app) as client:
        yield client, app, settings


async def make_dev(client: Client, settings: Settings, email: str) -> None:
    """Registered over HTTP (the app's own loop owns its connections), then made a dev."""
    await register(client, email)
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE users SET role = 'dev' WHERE email = :email"), {"email": email}
            )
    finally:
        await engine.dispose()


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def expiry_of(settings: Settings) -> datetime:
    [row] = await fetch(settings, "SELECT expires_at FROM sessions")
    value = row.expires_at
    if isinstance(value, str):  # SQLite hands the stored text back to a plain query
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def test_no_refresh_extends_a_session_past_its_absolute_lifetime(
    lived: tuple[Client, Any, Settings], clock: FakeClock
) -> None:
    client, _, settings = lived
    signed_in_at = clock.now()
    pair = await register(client)
    client.cookies.clear()
    assert await expiry_of(settings) == signed_in_at + timedelta(minutes=60)

    clock.advance(minutes=50)
    answer = await refresh(client, pair["refresh_token"])
    assert answer.status_code == 200, answer.text
    assert await expiry_of(settings) == signed_in_at + timedelta(minutes=110)  # sliding

    clock.advance(minutes=50)
    answer = await refresh(client, answer.json()["refresh_token"])
    assert answer.status_code == 200, answer.text
    # min(now + 60 min, sign-in + 2 h): the absolute lifetime caps the sliding expiry.
    assert await expiry_of(settings) == signed_in_at + timedelta(hours=2)

    clock.advance(minutes=21)  # 2 h 1 min after the sign-in, within 60 min of the last refresh
    ended = await refresh(client, answer.json()["refresh_token"])
    assert_problem(ended, 401, "session_expired")
    actions = [row.action for row in await fetch(settings, "SELECT action FROM audit_events")]
    assert "refresh.reused" not in actions  # an ended session is not a leaked token


async def test_a_dev_session_must_present_its_second_factor_again(
    database_url: str, make_settings: SettingsFactory, clock: FakeClock
) -> None:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(DATABASE_URL=database_url)  # the defaults: 720 h and 12 h
    app = make_app(settings, ClockProvider(clock))
    async with AsyncTestClient(app) as client:
        await make_dev(client, settings, "dev@example.com")
        plain = (await login(client, "dev@example.com")).json()
        client.cookies.clear()
        totp = await enrol(client, bearer(plain["access_token"]))
        code = totp.at(clock.now().timestamp() + 30)  # the next step on the app's (fake) clock
        dev = await login(client, "dev@example.com", scope="dev", otp=code)
        assert dev.status_code == 200, dev.text
        client.cookies.clear()
        dev_token, user_token = dev.json()["refresh_token"], plain["refresh_token"]

        clock.advance(hours=11, minutes=59)
        again = await refresh(client, dev_token)
        assert again.status_code == 200, again.text
        assert again.json()["role"] == "dev"
        assert again.json()["expires_in"] <= 60  # no access token outlives its session
        dev_token = again.json()["refresh_token"]
        client.cookies.clear()

        clock.advance(minutes=2)  # 12 h 1 min after the dev sign-in
        assert_problem(await refresh(client, dev_token), 401, "session_expired")
        # The plain session of the same account lives on (720 h by default).
        user = await refresh(client, user_token)
        assert user.status_code == 200, user.text
