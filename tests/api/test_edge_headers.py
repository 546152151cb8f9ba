"""What every answer carries (nosniff, no-store, no framing), CSRF bound to the session, CSV media
types, and mail header fields that cannot smuggle a second header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, bearer, create_account, fetch, login
from tests.conftest import SettingsFactory

Client = AsyncTestClient[Litestar]


@pytest.fixture
def dev_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(ENV="development", INPROCESS_WORKER="false")  # the master OTP works


@pytest.fixture
async def signed_in(dev_settings: Settings) -> AsyncIterator[tuple[Litestar, Client, str]]:
    """A client with session cookies of a dev session, and that session's access token."""
    app = make_app(dev_settings)
    async with AsyncTestClient(app) as client:
        await create_account(app, "dev@example.com", Role.DEV)
        response = await login(client, "dev@example.com", scope="dev", otp="000000")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        yield app, client, response.json()["access_token"]


async def test_token_and_personal_responses_are_never_stored(
    signed_in: tuple[Litestar, Client, str],
) -> None:
    _, client, token = signed_in
    auth = bearer(token)
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    refresh_token = registered.json()["refresh_token"]
    answers = [
        registered,
        await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token}),
        await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth),
        await client.get("/api/v1/users/me", headers=auth),
        await client.get("/api/v1/auth/me", headers=auth),
        await client.get("/api/v1/auth/sessions", headers=auth),
        await client.get("/api/v1/settings", headers=auth),
        await client.get("/api/v1/dashboard/summary", headers=auth),
        await client.get("/api/v1/admin/users", headers=auth),
        await client.get("/api/v1/admin/logs", headers=auth),
        await client.get("/api/v1/admin/waitlist", headers=auth),
    ]
    for answer in answers:
        assert answer.status_code in {200, 201}, answer.text
        assert answer.headers.get("cache-control") == "no-store", answer.request.url


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/healthz"),
        ("GET", "/no/such/page"),
        ("DELETE", "/api/v1/healthz"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/docs"),
        ("GET", "/api/v1/users/me"),
        ("POST", "/api/v1/waitlist"),
        ("GET", "/api/v1/auth/password-reset/page"),
    ],
)
async def test_every_answer_says_nosniff(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], response.status_code


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/docs",
        "/api/v1/auth/password-reset/page?token=t",
        "/api/v1/auth/verify-page?token=t",
    ],
)
async def test_html_pages_refuse_framing(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_logout_by_refresh_cookie_needs_the_csrf_header(client: Client) -> None:
    await client.post(
        "/api/v1/auth/register", json={"email": "out@example.com", "password": PASSWORD}
    )
    csrf = client.cookies["orbsurv_csrf"]
    client.cookies.delete("orbsurv_access")  # only the refresh cookie authenticates now
    refused = await client.post("/api/v1/auth/logout")
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    # The session survived the forged request: the cookie still refreshes.
    refreshed = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert refreshed.status_code == 200, refreshed.text
    client.cookies.delete("orbsurv_access")
    done = await client.post(
        "/api/v1/auth/logout", headers={"X-CSRF-Token": client.cookies["orbsurv_csrf"]}
    )
    assert done.status_code == 204


async def _cookies_of(app: Litestar, email: str) -> dict[str, str]:
    async with AsyncTestClient(app) as other:
        response = await other.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201
        return dict(other.cookies)


async def test_a_tossed_csrf_cookie_does_not_pass(app: Litestar, client: Client) -> None:
    victim = await _cookies_of(app, "victim@example.com")
    attacker = await _cookies_of(app, "attacker@example.com")
    change = {"name": "Changed"}

    async def patch(csrf_cookie: str, header: str) -> Any:
        client.cookies.clear()
        client.cookies.set("orbsurv_access", victim["orbsurv_access"])
        client.cookies.set("orbsurv_csrf", csrf_cookie)
        return await client.patch(
            "/api/v1/account/profile", json=change, headers={"X-CSRF-Token": header}
        )

    # The attacker's own, validly minted cookie, tossed into the victim's browser with a header.
    tossed = await patch(attacker["orbsurv_csrf"], attacker["orbsurv_csrf"])
    assert tossed.status_code == 403
    assert tossed.json()["code"] == "csrf_failed"
    made_up = await patch("made-up-value", "made-up-value")
    assert made_up.status_code == 403
    assert (await patch(victim["orbsurv_csrf"], victim["orbsurv_csrf"])).status_code == 200
    # The refresh cookie is bound the same way.
    client.cookies.clear()
    client.cookies.set("orbsurv_refresh", victim["orbsurv_refresh"], path="/api/v1/auth")
    client.cookies.set("orbsurv_csrf", attacker["orbsurv_csrf"])
    refused = await client.post(
        "/api/v1/auth/refresh", headers={"X-CSRF-Token": attacker["orbsurv_csrf"]}
    )
    assert refused.status_code == 403


async def test_csv_exports_name_their_charset_once(
    signed_in: tuple[Litestar, Client, str],
) -> None:
    _, client, token = signed_in
    export = await client.get(
        "/api/v1/admin/waitlist", params={"format": "csv"}, headers=bearer(token)
    )
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.headers.get_list("x-content-type-options") == ["nosniff"]


@pytest.mark.parametrize(
    ("mail", "field"),
    [
        ({"to": "a@example.com", "subject": "Hi\r\nBcc: x@example.com", "body": "b"}, "subject"),
        ({"to": "a@example.com", "subject": "Hi\nthere", "body": "b"}, "subject"),
        ({"to": "a@example.com", "subject": "Hi\rthere", "body": "b"}, "subject"),
        ({"to": "a@example.com", "subject": "tab\there", "body": "b"}, "subject"),
        ({"to": "a@example.com\r\nBcc: x@example.com", "subject": "Hi", "body": "b"}, "to"),
        ({"to": "Ada <a@example.com>", "subject": "Hi", "body": "b"}, "to"),
    ],
)
async def test_mail_header_fields_refuse_line_breaks(
    signed_in: tuple[Litestar, Client, str],
    dev_settings: Settings,
    mail: dict[str, str],
    field: str,
) -> None:
    _, client, token = signed_in
    response = await client.post("/api/v1/admin/send-email", json=mail, headers=bearer(token))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await fetch(dev_settings, "SELECT id FROM outbox_messages") == []
