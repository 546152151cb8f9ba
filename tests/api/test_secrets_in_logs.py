"""No password, hash, token or TOTP secret in a log line or an error body, even when a write fails
in the database and the driver quotes the failing row (PostgreSQL's ``DETAIL``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.logs import redacted_traceback
from tests.api.identity_helpers import PASSWORD, bearer
from tests.conftest import SettingsFactory, truncate_all

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def pg_client(
    postgres_url: str, make_settings: SettingsFactory
) -> AsyncIterator[tuple[Client, str]]:
    await truncate_all(postgres_url)
    async with AsyncTestClient(make_app(make_settings(DATABASE_URL=postgres_url))) as client:
        yield client, postgres_url


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


REFUSE_UPDATES = """
CREATE FUNCTION refuse_user_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'users are read-only' USING DETAIL = 'Failing row contains ' || NEW::text;
END $$;
CREATE TRIGGER refuse_user_updates BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION refuse_user_updates();
"""
ALLOW_UPDATES = """
DROP TRIGGER refuse_user_updates ON users;
DROP FUNCTION refuse_user_updates();
"""


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_a_failed_password_change_logs_neither_hash_nor_password(
    pg_client: tuple[Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, url = pg_client
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "v@example.com", "password": PASSWORD}
    )
    token = registered.json()["access_token"]
    # Every update fails, and the error quotes the whole row, as PostgreSQL's checks do.
    await _sql(url, REFUSE_UPDATES)
    new_password = "an entirely new passphrase"
    try:
        with caplog.at_level(logging.INFO):
            response = await client.patch(
                "/api/v1/account/password",
                json={"current_password": PASSWORD, "new_password": new_password},
                headers=bearer(token),
            )
    finally:
        await _sql(url, ALLOW_UPDATES)
    assert response.status_code == 500, response.text
    assert "$argon2" not in response.text
    assert new_password not in response.text
    logged = _everything_logged(caplog)
    assert "P0001" in logged  # the error is logged, with its SQLSTATE
    assert "$argon2" not in logged
    assert "Failing row" not in logged
    assert new_password not in logged
    assert PASSWORD not in logged
    assert "[parameters:" not in logged


async def test_a_failed_totp_enrolment_logs_no_secret(
    pg_client: tuple[Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, url = pg_client
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "t@example.com", "password": PASSWORD}
    )
    token = registered.json()["access_token"]
    await _sql(url, REFUSE_UPDATES)
    try:
        with caplog.at_level(logging.INFO):
            response = await client.post(
                "/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=bearer(token)
            )
    finally:
        await _sql(url, ALLOW_UPDATES)
    assert response.status_code == 500
    logged = _everything_logged(caplog)
    assert "P0001" in logged
    assert "Failing row" not in logged
    assert "$argon2" not in logged
    assert "[parameters:" not in logged


async def test_a_dropped_table_is_logged_without_values(
    pg_client: tuple[Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, url = pg_client
    await _sql(url, "ALTER TABLE user_settings RENAME TO user_settings_away")
    try:
        registered = await client.post(
            "/api/v1/auth/register", json={"email": "d@example.com", "password": PASSWORD}
        )
        token = registered.json()["access_token"]
        with caplog.at_level(logging.INFO):
            response = await client.patch(
                "/api/v1/settings/notifications",
                json={"email_alerts": False},
                headers=bearer(token),
            )
    finally:
        await _sql(url, "ALTER TABLE user_settings_away RENAME TO user_settings")
    assert response.status_code == 500
    logged = _everything_logged(caplog)
    assert "42P01" in logged  # undefined table
    assert "[parameters:" not in logged


def test_a_chained_driver_message_is_withheld() -> None:
    class FakeDriverError(Exception):
        sqlstate = "23502"

    FakeDriverError.__module__ = "asyncpg.exceptions"
    row = ", ".join(["x", "$argon2id$secret"])
    try:
        try:
            raise FakeDriverError(f"DETAIL: Failing row contains ({row})")
        except FakeDriverError as inner:
            raise RuntimeError("the write failed") from inner
    except RuntimeError as exc:
        text = redacted_traceback(exc)
    assert "$argon2id$secret" not in text
    assert "sqlstate=23502" in text
    assert "RuntimeError: the write failed" in text
