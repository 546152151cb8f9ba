"""Account lifecycle and portal over HTTP, with mail delivered to a real SMTP server: the tests
read the messages and follow their links."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import Message
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from orbsurv.application.account.mail_requests import ProcessMailRequests
from orbsurv.application.outbox import DeliverOutbox
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, Client, bearer, fetch, login, register
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, SmtpServer

NEW_PASSWORD = "a much better horse"


@pytest.fixture
def mail_settings(make_settings: SettingsFactory, smtp_server: SmtpServer) -> Settings:
    return make_settings(
        SMTP_HOST=smtp_server.host, SMTP_PORT=str(smtp_server.port), SMTP_TLS="plain"
    )


@pytest.fixture
async def mail_app(mail_settings: Settings) -> Litestar:
    return make_app(mail_settings)


@pytest.fixture
async def mclient(mail_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(mail_app) as client:
        yield client


async def deliver(app: Litestar) -> int:
    """What the worker does: resolve mail requests, then deliver the outbox once."""
    async with app.state.dishka_container() as request:
        await (await request.get(ProcessMailRequests))()
    async with app.state.dishka_container() as request:
        return await (await request.get(DeliverOutbox))()


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode())  # type: ignore[union-attr]
    raise AssertionError("no text part")


def link_in(message: Message) -> str:
    found = re.search(r"https?://\S+token=[A-Za-z0-9_-]+", text_of(message))
    assert found, text_of(message)
    return found.group(0)


def token_in(message: Message) -> str:
    return link_in(message).rsplit("token=", 1)[1]


def mail_to(smtp: SmtpServer, address: str) -> list[Message]:
    return [m for m in smtp.messages if m["To"] == address]


# --- verification -----------------------------------------------------------------------------


async def test_registration_mails_a_link_that_verifies_once(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    pair = await register(mclient)
    assert await deliver(mail_app) == 1
    [mail] = mail_to(smtp_server, "ada@example.com")
    assert mail["Subject"] == "Confirm your email address"
    link = link_in(mail)
    assert "/api/v1/auth/verify-page?token=" in link
    token = token_in(mail)
    verified = await mclient.get("/api/v1/auth/verify", params={"token": token})
    assert verified.json() == {"status": "verified", "email": "ada@example.com"}
    assert_problem(
        await mclient.get("/api/v1/auth/verify", params={"token": token}), 400, "invalid_token"
    )
    me = await mclient.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.json()["email_verified"] is True


async def test_the_verify_page_is_safe(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    await register(mclient)
    await deliver(mail_app)
    token = token_in(mail_to(smtp_server, "ada@example.com")[0])
    page = await mclient.get("/api/v1/auth/verify-page", params={"token": token})
    assert page.status_code == 200
    assert token not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    confirmed = await mclient.post("/api/v1/auth/verify-page", params={"token": token})
    assert confirmed.status_code == 200
    assert token not in confirmed.text
    assert "confirmed" in confirmed.text
    hostile = '"><script>alert(1)</script>'
    again = await mclient.post("/api/v1/auth/verify-page", params={"token": hostile})
    assert again.status_code == 400
    assert "<script>alert" not in again.text
    assert "invalid" in again.text


async def test_resend_answers_alike_and_is_limited(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    await register(mclient)
    known = await mclient.post("/api/v1/auth/verify/resend", json={"email": "ada@example.com"})
    unknown = await mclient.post("/api/v1/auth/verify/resend", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    await deliver(mail_app)
    assert len(mail_to(smtp_server, "ada@example.com")) == 2
    assert mail_to(smtp_server, "nobody@example.com") == []
    for _ in range(4):  # the account's mail budget (five an hour while a link lives) ...
        await mclient.post("/api/v1/auth/verify/resend", data={"email": "ada@example.com"})
    again = await mclient.post("/api/v1/auth/verify/resend", json={"email": "ada@example.com"})
    assert again.status_code == 202  # ... never refuses the request: anyone may name the address
    await deliver(mail_app)
    assert len(mail_to(smtp_server, "ada@example.com")) == 5
    for n in range(13):  # the client's budget: twenty requests an hour (seven so far)
        await mclient.post("/api/v1/auth/verify/resend", json={"email": f"x{n}@example.com"})
    limited = await mclient.post("/api/v1/auth/verify/resend", json={"email": "ada@example.com"})
    assert_problem(limited, 429, "rate_limited")
    assert "retry-after" in limited.headers


async def test_verification_required_before_login(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        AUTH_REQUIRE_VERIFIED_EMAIL="true",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="plain",
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        assert (
            await client.post(
                "/api/v1/auth/register", json={"email": "v@example.com", "password": PASSWORD}
            )
        ).status_code == 202
        assert_problem(await login(client, "v@example.com"), 403, "email_not_verified")
        await deliver(app)
        await client.get(
            "/api/v1/auth/verify",
            params={"token": token_in(mail_to(smtp_server, "v@example.com")[0])},
        )
        assert (await login(client, "v@example.com")).status_code == 200


# --- password reset ----------------------------------------------------------------------------


async def request_reset(
    client: Client, email: str, path: str = "/api/v1/auth/password-reset/requests"
) -> Any:
    return await client.post(path, json={"email": email})


async def test_reset_flow(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer, mail_settings: Settings
) -> None:
    first = await register(mclient)
    other = (await login(mclient)).json()
    await deliver(mail_app)
    smtp_server.messages.clear()
    known = await request_reset(mclient, "ada@example.com")
    unknown = await request_reset(mclient, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    await deliver(mail_app)
    [mail] = mail_to(smtp_server, "ada@example.com")
    assert "/api/v1/auth/password-reset/page?token=" in link_in(mail)
    token = token_in(mail)
    # A reset token cannot verify an address.
    assert_problem(
        await mclient.get("/api/v1/auth/verify", params={"token": token}), 400, "invalid_token"
    )
    weak = await mclient.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "password"}
    )
    assert_problem(weak, 422, "validation_error")  # the token survives a rejected password
    done = await mclient.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.json() == {"status": "password_reset"}
    assert "set-cookie" not in done.headers  # does not sign in
    again = await mclient.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(again, 400, "invalid_token")
    mclient.cookies.clear()
    for pair in (first, other):
        assert_problem(
            await mclient.get("/api/v1/users/me", headers=bearer(pair["access_token"])),
            401,
            "token_revoked",
        )
    assert_problem(await login(mclient), 401, "invalid_credentials")
    assert (await login(mclient, password=NEW_PASSWORD)).status_code == 200
    await deliver(mail_app)
    assert [m["Subject"] for m in mail_to(smtp_server, "ada@example.com")][
        -1
    ] == "Your password was changed"
    actions = {row.action for row in await fetch(mail_settings, "SELECT action FROM audit_events")}
    assert {"password_reset.requested", "password.reset"} <= actions


async def test_a_verify_token_cannot_reset(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    await register(mclient)
    await deliver(mail_app)
    verify_token = token_in(mail_to(smtp_server, "ada@example.com")[0])
    response = await mclient.post(
        "/api/v1/auth/reset", json={"token": verify_token, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400, "invalid_token")


async def test_reset_works_for_a_locked_account(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    await register(mclient)
    for _ in range(5):
        await login(mclient, password="wrong horse battery")
    assert_problem(await login(mclient), 429, "too_many_attempts")
    form = await mclient.post(
        "/api/v1/auth/forgot", data={"email": "ada@example.com"}
    )  # a web form
    assert form.status_code == 202
    await deliver(mail_app)
    token = token_in(mail_to(smtp_server, "ada@example.com")[-1])
    await mclient.post(
        "/api/v1/auth/password-reset/confirm", data={"token": token, "new_password": NEW_PASSWORD}
    )
    assert (await login(mclient, password=NEW_PASSWORD)).status_code == 200


async def test_expired_reset_token(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer, mail_settings: Settings
) -> None:
    from orbsurv.adapters.persistence.database import make_engine

    await register(mclient)
    await request_reset(mclient, "ada@example.com")
    await deliver(mail_app)
    token = token_in(mail_to(smtp_server, "ada@example.com")[-1])
    engine = make_engine(mail_settings.database_url)
    async with engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE action_tokens SET expires_at = created_at"))
    await engine.dispose()
    response = await mclient.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 400, "invalid_token")


async def test_reset_page_never_reflects_the_token(mclient: Client) -> None:
    page = await mclient.get(
        "/api/v1/auth/password-reset/page", params={"token": "<b>SECRET-TOKEN</b>"}
    )
    assert page.status_code == 200
    assert "SECRET-TOKEN" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp  # no script at all: the form works without one
    assert "script-src" not in csp
    assert "unsafe-inline" not in csp


async def test_reset_requests_do_the_same_work_for_every_address(
    mclient: Client, mail_app: Litestar
) -> None:
    """Known and unknown addresses run the very same statements in the same order: the answer
    costs the same, by construction rather than by a stopwatch a busy machine would stretch."""
    for n in range(3):
        await register(mclient, f"known{n}@example.com")
    mclient.cookies.clear()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def work_for(email: str) -> list[str]:
        statements.clear()
        response = await mclient.post("/api/v1/auth/password-reset/requests", json={"email": email})
        assert response.status_code == 202
        assert response.json()["status"] == "accepted"
        return list(statements)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        await work_for("warm-up@example.com")
        for n in range(3):
            known = await work_for(f"known{n}@example.com")
            unknown = await work_for(f"ghost{n}@example.com")
            assert known == unknown
            assert known  # the request did record something
            assert not any("users" in statement.split("WHERE")[0] for statement in known)
    finally:
        event.remove(Engine, "before_cursor_execute", record)


# --- the portal ------------------------------------------------------------------------------


async def test_dashboard_shows_only_your_own_logs(mclient: Client) -> None:
    mine = await register(mclient)
    await register(mclient, "eve@example.com")
    mclient.cookies.clear()
    for prefix in ("/api/v1", "/api/v1/app"):
        body = (
            await mclient.get(f"{prefix}/dashboard/summary", headers=bearer(mine["access_token"]))
        ).json()
        assert set(body) == {"user", "metrics", "recent_logs", "command_center_url"}
        assert body["user"]["email"] == "ada@example.com"
        assert body["metrics"]["active_sessions"] == 1
        assert body["recent_logs"]
        assert all(log["target_id"] != "eve@example.com" for log in body["recent_logs"])
        assert {log["action"] for log in body["recent_logs"]} <= {
            "user.registered",
            "login.succeeded",
        }


async def test_profile_updates(mclient: Client) -> None:
    pair = await register(mclient)
    await register(mclient, "eve@example.com")
    await mclient.patch(
        "/api/v1/account/profile",
        json={"username": "eve"},
        headers=bearer((await login(mclient, "eve@example.com")).json()["access_token"]),
    )
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    patched = await mclient.patch(
        "/api/v1/account/profile", json={"name": "Ada L", "organization": "Orb"}, headers=auth
    )
    assert patched.json()["name"] == "Ada L"
    put = await mclient.put(
        "/api/v1/app/account/profile", json={"name": "", "email": "ADA@example.com"}, headers=auth
    )
    assert put.status_code == 200
    assert put.json()["name"] == "Ada L"  # "" keeps the value; the same email is ignored
    assert (await mclient.get("/api/v1/users/me", headers=auth)).json()[
        "organization"
    ] == "Orb"  # cache invalidated
    other_email = await mclient.patch(
        "/api/v1/account/profile", json={"email": "new@example.com"}, headers=auth
    )
    body = assert_problem(other_email, 422, "validation_error")
    assert "/account/email" in body["detail"]
    for forbidden in ({"role": "dev"}, {"email_verified": True}, {"nmae": "typo"}):
        refused = await mclient.patch("/api/v1/account/profile", json=forbidden, headers=auth)
        problem = assert_problem(refused, 422, "validation_error")
        assert problem["errors"][0]["field"] == next(iter(forbidden))
    me = (await mclient.get("/api/v1/users/me", headers=auth)).json()
    assert me["role"] == "user"
    assert me["email_verified"] is False
    taken = await mclient.patch("/api/v1/account/profile", json={"username": "EVE"}, headers=auth)
    assert_problem(taken, 409, "username_taken")


async def test_email_change(mclient: Client, mail_app: Litestar, smtp_server: SmtpServer) -> None:
    pair = await register(mclient)
    await register(mclient, "eve@example.com")
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    assert_problem(
        await mclient.patch(
            "/api/v1/account/email",
            json={"new_email": "n@example.com", "current_password": "wrong horse"},
            headers=auth,
        ),
        400,
        "wrong_password",
    )
    assert_problem(
        await mclient.patch(
            "/api/v1/account/email",
            json={"new_email": "eve@example.com", "current_password": PASSWORD},
            headers=auth,
        ),
        409,
        "email_taken",
    )
    accepted = await mclient.put(
        "/api/v1/account/email",
        json={"new_email": "New@Example.com", "current_password": PASSWORD},
        headers=auth,
    )
    assert accepted.status_code == 202
    await deliver(mail_app)
    [confirm] = mail_to(smtp_server, "new@example.com")
    notices = [
        m
        for m in mail_to(smtp_server, "ada@example.com")
        if m["Subject"] == "Your email address is being changed"
    ]
    assert len(notices) == 1
    assert (await mclient.get("/api/v1/users/me", headers=auth)).json()[
        "email"
    ] == "ada@example.com"  # not yet
    changed = await mclient.get("/api/v1/auth/verify", params={"token": token_in(confirm)})
    assert changed.json() == {"status": "email_changed", "email": "new@example.com"}
    me = (await mclient.get("/api/v1/users/me", headers=auth)).json()
    assert me["email"] == "new@example.com"
    assert me["email_verified"] is True


async def test_email_change_to_an_address_taken_meanwhile(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    pair = await register(mclient)
    mclient.cookies.clear()
    await mclient.patch(
        "/api/v1/account/email",
        json={"new_email": "late@example.com", "current_password": PASSWORD},
        headers=bearer(pair["access_token"]),
    )
    await register(mclient, "late@example.com")  # someone else takes it first
    await deliver(mail_app)
    confirm = next(
        m
        for m in mail_to(smtp_server, "late@example.com")
        if m["Subject"] == "Confirm your new email address"
    )
    assert_problem(
        await mclient.get("/api/v1/auth/verify", params={"token": token_in(confirm)}),
        409,
        "email_taken",
    )
    me = (await mclient.get("/api/v1/users/me", headers=bearer(pair["access_token"]))).json()
    assert me["email"] == "ada@example.com"  # nothing changed


async def test_email_change_mails_are_bounded_per_account(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    """An email change mails an address the account does not own, so its confirmation mails
    spend the account's mail budget like reset mails: past 5 an hour, nothing new while a link
    sent is live, whichever address each request names; the answer stays 202. Once the change
    applies (which ends the other links) the next request mails again."""
    pair = await register(mclient)
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    for n in range(8):
        accepted = await mclient.patch(
            "/api/v1/account/email",
            json={"new_email": f"n{n}@example.com", "current_password": PASSWORD},
            headers=auth,
        )
        assert accepted.status_code == 202, accepted.text
    await deliver(mail_app)
    confirms = [m for m in smtp_server.messages if m["Subject"] == "Confirm your new email address"]
    assert sorted(m["To"] for m in confirms) == [f"n{n}@example.com" for n in range(5)]
    notices = [
        m
        for m in mail_to(smtp_server, "ada@example.com")
        if m["Subject"] == "Your email address is being changed"
    ]
    assert len(notices) == 5
    # The links sent still work: the owner is never locked out of a change.
    changed = await mclient.get("/api/v1/auth/verify", params={"token": token_in(confirms[-1])})
    assert changed.json()["status"] == "email_changed", changed.text
    again = await mclient.patch(
        "/api/v1/account/email",
        json={"new_email": "final@example.com", "current_password": PASSWORD},
        headers=auth,
    )
    assert again.status_code == 202, again.text
    await deliver(mail_app)
    assert len(mail_to(smtp_server, "final@example.com")) == 1


async def test_password_change_keeps_this_session_only(mclient: Client) -> None:
    current = await register(mclient)
    other = (await login(mclient)).json()
    mclient.cookies.clear()
    auth = bearer(current["access_token"])
    wrong = await mclient.patch(
        "/api/v1/account/password",
        json={"current_password": "nope nope", "new_password": NEW_PASSWORD},
        headers=auth,
    )
    assert_problem(wrong, 400, "wrong_password")
    weak = await mclient.patch(
        "/api/v1/account/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=auth,
    )
    assert_problem(weak, 422, "validation_error")
    ok = await mclient.put(
        "/api/v1/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth,
    )
    assert ok.json() == {"status": "password_changed"}
    assert (await mclient.get("/api/v1/users/me", headers=auth)).status_code == 200
    assert_problem(
        await mclient.get("/api/v1/users/me", headers=bearer(other["access_token"])),
        401,
        "token_revoked",
    )


async def test_organization_and_time_zone(mclient: Client) -> None:
    pair = await register(mclient)
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    ok = await mclient.patch(
        "/api/v1/account/organization",
        json={"organization": "Orbital", "timezone": "Europe/Paris"},
        headers=auth,
    )
    assert ok.json()["organization"] == "Orbital"
    assert (await mclient.get("/api/v1/settings", headers=auth)).json()[
        "timezone"
    ] == "Europe/Paris"
    for zone in ("Mars/Olympus", "../../etc/passwd", "UTC+25"):
        bad = await mclient.patch(
            "/api/v1/account/organization",
            json={"organization": "X", "timezone": zone},
            headers=auth,
        )
        assert_problem(bad, 422, "validation_error")
    assert (await mclient.get("/api/v1/users/me", headers=auth)).json()["organization"] == "Orbital"


async def test_organization_updates_merge(mclient: Client) -> None:
    pair = await register(mclient)
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    url = "/api/v1/account/organization"

    async def stored() -> tuple[str | None, str | None]:
        me = (await mclient.get("/api/v1/users/me", headers=auth)).json()
        settings = (await mclient.get("/api/v1/settings", headers=auth)).json()
        return me["organization"], settings["timezone"]

    set_org = await mclient.patch(url, json={"organization": "Orbital"}, headers=auth)
    assert set_org.status_code == 200, set_org.text
    zone = await mclient.patch(url, json={"timezone": "Europe/London"}, headers=auth)
    assert zone.status_code == 200, zone.text
    assert zone.json()["organization"] == "Orbital"
    assert await stored() == ("Orbital", "Europe/London")
    put = await mclient.put(url, json={"timezone": "Europe/Paris"}, headers=auth)
    assert put.json()["organization"] == "Orbital"
    assert await stored() == ("Orbital", "Europe/Paris")
    for body in ({}, {"organization": ""}, {"timezone": None}):
        same = await mclient.patch(url, json=body, headers=auth)
        assert same.status_code == 200, same.text
        assert same.json()["organization"] == "Orbital"
        assert await stored() == ("Orbital", "Europe/Paris")
    cleared = await mclient.patch(url, json={"organization": None}, headers=auth)
    assert cleared.json()["organization"] is None
    assert await stored() == (None, "Europe/Paris")
    for zone in ("Mars/Olympus", "localtime", "posixrules", "Factory"):  # not IANA names
        bad = await mclient.patch(url, json={"organization": "X", "timezone": zone}, headers=auth)
        assert_problem(bad, 422, "validation_error")
        assert await stored() == (None, "Europe/Paris")


async def test_settings_merge(mclient: Client) -> None:
    pair = await register(mclient)
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    initial = (await mclient.get("/api/v1/app/settings", headers=auth)).json()
    assert initial["notifications"]["email_alerts"] is True
    merged = await mclient.patch(
        "/api/v1/settings/notifications", json={"weekly_digest": True}, headers=auth
    )
    assert merged.json() == {**initial["notifications"], "weekly_digest": True}
    again = await mclient.put(
        "/api/v1/settings/notifications", json={"email_alerts": False}, headers=auth
    )
    assert again.json()["weekly_digest"] is True  # kept
    assert again.json()["email_alerts"] is False
    automation = await mclient.patch(
        "/api/v1/settings/automation", json={"retention_days": 30}, headers=auth
    )
    assert automation.json()["retention_days"] == 30
    for bad in ({"nonsense": True}, {"weekly_digest": "yes"}):
        assert_problem(
            await mclient.patch("/api/v1/settings/notifications", json=bad, headers=auth),
            422,
            "validation_error",
        )
    assert_problem(
        await mclient.patch(
            "/api/v1/settings/automation", json={"retention_days": 0}, headers=auth
        ),
        422,
        "validation_error",
    )
    final = (await mclient.get("/api/v1/settings", headers=auth)).json()
    assert final["notifications"] == again.json()


async def test_portal_needs_a_session(client: Client) -> None:
    for method, path in (
        ("GET", "/api/v1/dashboard/summary"),
        ("GET", "/api/v1/settings"),
        ("PATCH", "/api/v1/account/profile"),
    ):
        response = await client.request(method, path, json={} if method == "PATCH" else None)
        assert_problem(response, 401, "unauthenticated")


async def test_mail_failures_never_fail_the_request(
    mclient: Client, mail_app: Litestar, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse = True
    assert (
        await mclient.post(
            "/api/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD}
        )
    ).status_code == 201
    assert await deliver(mail_app) == 1
    assert smtp_server.messages == []  # refused; kept for a retry


async def test_update_bodies_are_strictly_typed(mclient: Client) -> None:
    pair = await register(mclient)
    mclient.cookies.clear()
    auth = bearer(pair["access_token"])
    for body in ({"email_alerts": 0}, {"email_alerts": "yes"}, {"weekly_digest": None}):
        response = await mclient.patch("/api/v1/settings/notifications", json=body, headers=auth)
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == next(iter(body))
