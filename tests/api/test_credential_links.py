"""Single-use links die with the credential they guard: a password change (own or by reset), an
applied email change, an operator's role change or a deactivation ends every outstanding link of
the account at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    PASSWORD,
    Client,
    bearer,
    create_account,
    fetch,
    login,
    register,
)
from tests.api.test_account import NEW_PASSWORD, deliver, mail_to, token_in
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, SmtpServer

RESET = "/api/v1/auth/password-reset/confirm"
ATTACKER_PASSWORD = "the reset link's password"


@pytest.fixture
def link_settings(make_settings: SettingsFactory, smtp_server: SmtpServer) -> Settings:
    return make_settings(
        ENV="development",  # the master OTP opens the dev session that deactivates
        INPROCESS_WORKER="false",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="plain",
    )


@pytest.fixture
async def links(link_settings: Settings) -> AsyncIterator[tuple[Litestar, Client]]:
    app = make_app(link_settings)
    async with AsyncTestClient(app) as client:
        yield app, client


async def reset_token(app: Litestar, client: Client, smtp: SmtpServer, email: str) -> str:
    await deliver(app)  # whatever was queued before
    smtp.messages.clear()
    asked = await client.post("/api/v1/auth/password-reset/requests", json={"email": email})
    assert asked.status_code == 202
    await deliver(app)
    [mail] = mail_to(smtp, email)
    return token_in(mail)


async def test_a_password_change_in_settings_kills_the_reset_link(
    links: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    app, client = links
    pair = await register(client, "a@example.com")
    client.cookies.clear()
    token = await reset_token(app, client, smtp_server, "a@example.com")
    changed = await client.patch(
        "/api/v1/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    refused = await client.post(RESET, json={"token": token, "new_password": ATTACKER_PASSWORD})
    assert_problem(refused, 400, "invalid_token")
    # The owner's password stands; the link's never took.
    assert (await login(client, "a@example.com", password=NEW_PASSWORD)).status_code == 200
    assert_problem(
        await login(client, "a@example.com", password=ATTACKER_PASSWORD), 401, "invalid_credentials"
    )


async def test_a_reset_kills_the_other_links(
    links: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    app, client = links
    await register(client, "a@example.com")
    client.cookies.clear()
    first = await reset_token(app, client, smtp_server, "a@example.com")
    second = await reset_token(app, client, smtp_server, "a@example.com")
    done = await client.post(RESET, json={"token": second, "new_password": NEW_PASSWORD})
    assert done.status_code == 200, done.text
    assert_problem(
        await client.post(RESET, json={"token": first, "new_password": ATTACKER_PASSWORD}),
        400,
        "invalid_token",
    )
    assert (await login(client, "a@example.com", password=NEW_PASSWORD)).status_code == 200


async def test_a_confirmed_email_change_kills_the_old_address_links(
    links: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    app, client = links
    pair = await register(client, "a@example.com")
    client.cookies.clear()
    smtp_server.messages.clear()
    await deliver(app)
    [verification] = mail_to(smtp_server, "a@example.com")  # sent at registration, not used
    verify_old = token_in(verification)
    reset_old = await reset_token(app, client, smtp_server, "a@example.com")
    asked = await client.patch(
        "/api/v1/account/email",
        json={"new_email": "b@example.com", "current_password": PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    assert asked.status_code == 202, asked.text
    smtp_server.messages.clear()
    await deliver(app)
    [confirm] = mail_to(smtp_server, "b@example.com")
    changed = await client.get("/api/v1/auth/verify", params={"token": token_in(confirm)})
    assert changed.json() == {"status": "email_changed", "email": "b@example.com"}

    assert_problem(
        await client.post(RESET, json={"token": reset_old, "new_password": ATTACKER_PASSWORD}),
        400,
        "invalid_token",
    )
    assert_problem(
        await client.get("/api/v1/auth/verify", params={"token": verify_old}),
        400,
        "invalid_token",
    )
    assert (await login(client, "b@example.com")).status_code == 200  # the password stands


async def test_a_second_pending_email_change_dies_when_the_first_applies(
    links: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    app, client = links
    pair = await register(client, "a@example.com")
    client.cookies.clear()
    for address in ("b@example.com", "c@example.com"):
        asked = await client.patch(
            "/api/v1/account/email",
            json={"new_email": address, "current_password": PASSWORD},
            headers=bearer(pair["access_token"]),
        )
        assert asked.status_code == 202
    smtp_server.messages.clear()
    await deliver(app)
    to_b = token_in(mail_to(smtp_server, "b@example.com")[0])
    to_c = token_in(mail_to(smtp_server, "c@example.com")[0])
    assert (await client.get("/api/v1/auth/verify", params={"token": to_b})).status_code == 200
    assert_problem(
        await client.get("/api/v1/auth/verify", params={"token": to_c}), 400, "invalid_token"
    )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param([{"is_active": False}, {"is_active": True}], id="deactivated-then-back"),
        # PATCH /admin/users/{id} says it ends the user's outstanding mail links.
        pytest.param([{"role": "admin"}], id="role-change"),
    ],
)
async def test_an_operator_change_kills_the_links(
    links: tuple[Litestar, Client],
    smtp_server: SmtpServer,
    link_settings: Settings,
    changes: list[dict[str, object]],
) -> None:
    app, client = links
    await create_account(app, "dev@example.com", Role.DEV)
    dev = (await login(client, "dev@example.com", scope="dev", otp="000000")).json()
    await register(client, "a@example.com")
    client.cookies.clear()
    token = await reset_token(app, client, smtp_server, "a@example.com")
    [row] = await fetch(link_settings, "SELECT id FROM users WHERE email = 'a@example.com'")
    for change in changes:
        answer = await client.patch(
            f"/api/v1/admin/users/{row.id}", json=change, headers=bearer(dev["access_token"])
        )
        assert answer.status_code == 200, answer.text
    assert_problem(
        await client.post(RESET, json={"token": token, "new_password": ATTACKER_PASSWORD}),
        400,
        "invalid_token",
    )
    assert (await login(client, "a@example.com")).status_code == 200


async def test_a_profile_change_keeps_the_links(
    links: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    """Only credentials end links: renaming yourself does not burn a verification link."""
    app, client = links
    pair = await register(client, "a@example.com")
    client.cookies.clear()
    renamed = await client.patch(
        "/api/v1/account/profile", json={"name": "Ada"}, headers=bearer(pair["access_token"])
    )
    assert renamed.status_code == 200
    smtp_server.messages.clear()
    await deliver(app)
    [verification] = mail_to(smtp_server, "a@example.com")
    verified = await client.get("/api/v1/auth/verify", params={"token": token_in(verification)})
    assert verified.json() == {"status": "verified", "email": "a@example.com"}
