"""Links in mail open a page; only a POST from that page spends the token.

Mail scanners and link previews fetch every link (GET, often twice): opening the page must change
nothing. The page is a plain form without JavaScript that posts back to its own address."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, Client, bearer, fetch, register
from tests.api.test_account import NEW_PASSWORD, deliver, link_in, mail_to, token_in
from tests.conftest import SettingsFactory, SmtpServer


@pytest.fixture
def mailing(make_settings: SettingsFactory, smtp_server: SmtpServer) -> Settings:
    return make_settings(
        SMTP_HOST=smtp_server.host, SMTP_PORT=str(smtp_server.port), SMTP_TLS="plain"
    )


@pytest.fixture
async def app_and_client(mailing: Settings) -> AsyncIterator[tuple[Litestar, Client]]:
    app = make_app(mailing)
    async with AsyncTestClient(app) as client:
        yield app, client


FORM = re.compile(r'<form method="post">')


def _path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def _prefetch(client: Client, link: str) -> None:
    """What a scanner does: open the link, twice."""
    for _ in range(2):
        page = await client.get(_path(link))
        assert page.status_code == 200
        assert FORM.search(page.text), page.text
        assert "<script" not in page.text
        assert "form-action 'self'" in page.headers["content-security-policy"]


async def test_a_prefetched_verification_link_still_works(
    app_and_client: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    mail_app, mclient = app_and_client
    pair = await register(mclient)
    await deliver(mail_app)
    link = link_in(mail_to(smtp_server, "ada@example.com")[0])
    await _prefetch(mclient, link)
    me = await mclient.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email_verified"] is False  # opening the page spent nothing
    confirmed = await mclient.post(_path(link))  # the page's form posts to its own address
    assert confirmed.status_code == 200
    assert "confirmed" in confirmed.text
    me = await mclient.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email_verified"] is True
    assert (await mclient.post(_path(link))).status_code == 400  # single use


async def test_a_prefetched_email_change_link_still_works(
    app_and_client: tuple[Litestar, Client], smtp_server: SmtpServer
) -> None:
    mail_app, mclient = app_and_client
    pair = await register(mclient)
    auth = bearer(pair["access_token"])
    mclient.cookies.clear()
    response = await mclient.patch(
        "/api/v1/account/email",
        json={"new_email": "new@example.com", "current_password": PASSWORD},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    await deliver(mail_app)
    [confirm] = mail_to(smtp_server, "new@example.com")
    link = link_in(confirm)
    await _prefetch(mclient, link)
    assert (await mclient.get("/api/v1/users/me", headers=auth)).json()["email"] == (
        "ada@example.com"
    )
    assert (await mclient.post(_path(link))).status_code == 200
    assert (await mclient.get("/api/v1/users/me", headers=auth)).json()["email"] == (
        "new@example.com"
    )


async def test_a_prefetched_reset_link_still_works_and_the_form_needs_no_script(
    app_and_client: tuple[Litestar, Client], mailing: Settings, smtp_server: SmtpServer
) -> None:
    mail_app, mclient = app_and_client
    await register(mclient)
    mclient.cookies.clear()
    await mclient.post("/api/v1/auth/password-reset/requests", json={"email": "ada@example.com"})
    await deliver(mail_app)
    [mail] = [m for m in mail_to(smtp_server, "ada@example.com") if "Reset" in m["Subject"]]
    link, token = link_in(mail), token_in(mail)
    await _prefetch(mclient, link)
    differ = await mclient.post(
        _path(link), data={"password": NEW_PASSWORD, "again": "something else entirely"}
    )
    assert differ.status_code == 400
    assert "differ" in differ.text
    # The API's field names are not the page's: the page names its own fields.
    api_names = {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    unnamed = await mclient.post(_path(link), data=api_names)
    assert unnamed.status_code == 400
    assert "both fields" in unnamed.text
    weak = await mclient.post(_path(link), data={"password": "short", "again": "short"})
    assert weak.status_code == 400
    assert token not in weak.text
    done = await mclient.post(_path(link), data={"password": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert done.status_code == 200, done.text
    assert "changed" in done.text
    signed_in = await mclient.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 200
    again = await mclient.post(_path(link), data={"password": PASSWORD, "again": PASSWORD})
    assert again.status_code == 400
    hashes = await fetch(mailing, "SELECT password_hash FROM users")
    assert len(hashes) == 1
