"""The operator console over HTTP: who may do what, lists, changes, alerts, exports."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.mail.smtp import to_mime
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    Client,
    bearer,
    create_account,
    fetch,
    login,
    register,
)
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory


@pytest.fixture
def console_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(ENV="development", INPROCESS_WORKER="false")  # the master OTP works


@pytest.fixture
async def console(
    console_settings: Settings,
) -> AsyncIterator[tuple[Litestar, Client, dict[str, str]]]:
    app = make_app(console_settings)
    async with AsyncTestClient(app) as client:
        await create_account(app, "dev@example.com", Role.DEV)
        await create_account(app, "admin@example.com", Role.ADMIN)
        user = await register(client, "user@example.com")
        tokens = {
            "dev": (await login(client, "dev@example.com", scope="dev", otp="000000")).json()[
                "access_token"
            ],
            "dev_plain": (await login(client, "dev@example.com")).json()["access_token"],
            "admin": (await login(client, "admin@example.com")).json()["access_token"],
            "user": user["access_token"],
        }
        client.cookies.clear()
        yield app, client, tokens


READ = [
    "/api/v1/admin/summary",
    "/api/v1/admin/users",
    "/api/v1/users",
    "/api/v1/admin/logs",
    "/api/v1/admin/audit-events",
    "/api/v1/admin/alerts",
    "/api/v1/admin/cookie-activity",
    "/api/v1/admin/waitlist",
    "/api/v1/admin/contacts",
    "/api/v1/admin/pilot-requests",
    "/api/v1/admin/investor-interest",
    "/api/v1/admin/client-errors",
]


async def test_who_may_read(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    for path in READ:
        for who in ("admin", "dev"):
            assert (await client.get(path, headers=bearer(tokens[who]))).status_code == 200, (
                path,
                who,
            )
        # A dev signed in without the second factor is a plain user here.
        assert_problem(
            await client.get(path, headers=bearer(tokens["dev_plain"])),
            403,
            "dev_session_required",
        )
        assert_problem(await client.get(path, headers=bearer(tokens["user"])), 403, "forbidden")
        assert_problem(await client.get(path), 401, "unauthenticated")


async def test_an_unknown_submission_list_names_the_lists(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    # The intake forms post to /contact and /pilot_request, but the console lists are plural
    # and hyphenated; a 404 for the form's own name says which lists exist.
    _, client, tokens = console
    response = await client.get("/api/v1/admin/contact", headers=bearer(tokens["admin"]))
    detail = assert_problem(response, 404, "not_found")["detail"]
    for kind in ("waitlist", "contacts", "pilot-requests", "investor-interest", "client-errors"):
        assert kind in detail


async def test_dev_routes_need_a_dev_session(
    console: tuple[Litestar, Client, dict[str, str]], console_settings: Settings
) -> None:
    _, client, tokens = console
    mail = {"to": "x@example.com", "subject": "Hi", "body": "Hello"}
    assert_problem(
        await client.post("/api/v1/admin/send-email", json=mail, headers=bearer(tokens["admin"])),
        403,
        "forbidden",
    )
    assert_problem(
        await client.post(
            "/api/v1/admin/send-email", json=mail, headers=bearer(tokens["dev_plain"])
        ),
        403,
        "dev_session_required",
    )
    assert (
        await client.post("/api/v1/admin/send-email", json=mail, headers=bearer(tokens["dev"]))
    ).status_code == 202
    denials = await fetch(
        console_settings, "SELECT target_id FROM audit_events WHERE action = 'access.denied'"
    )
    assert len(denials) == 2
    queued = await fetch(
        console_settings, "SELECT recipient FROM outbox_messages WHERE recipient = 'x@example.com'"
    )
    assert len(queued) == 1


async def test_a_burst_of_denials_raises_one_alert(
    console: tuple[Litestar, Client, dict[str, str]], console_settings: Settings
) -> None:
    _, client, tokens = console
    for _ in range(12):
        await client.get("/api/v1/admin/summary", headers=bearer(tokens["user"]))
    alerts = await fetch(
        console_settings, "SELECT rule FROM security_alerts WHERE rule = 'forbidden_burst'"
    )
    assert len(alerts) == 1  # deduplicated while open


async def test_summary_and_user_search(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    await client.post("/api/v1/waitlist", json={"email": "w@example.com"})
    summary = (await client.get("/api/v1/admin/summary", headers=auth)).json()
    assert summary["total_users"] == 3
    assert summary["total_waitlist"] == 1
    assert {key for key in summary if key.startswith("total_")} >= {
        "total_users",
        "total_contacts",
        "total_pilot_requests",
    }
    found = (await client.get("/api/v1/admin/users", params={"q": "ADMIN@"}, headers=auth)).json()
    assert [u["email"] for u in found["items"]] == ["admin@example.com"]
    devs = (await client.get("/api/v1/users", params={"role": "dev"}, headers=auth)).json()
    assert [u["email"] for u in devs["items"]] == ["dev@example.com"]
    paged = (
        await client.get("/api/v1/admin/users", params={"page_size": 2, "page": 2}, headers=auth)
    ).json()
    assert paged["total"] == 3
    assert paged["pages"] == 2
    assert len(paged["items"]) == 1
    text = (await client.get("/api/v1/admin/users", params={"limit": 1000}, headers=auth)).text
    for secret in ("password_hash", "otp_secret", "argon2", "refresh"):
        assert secret not in text
    assert_problem(
        await client.get("/api/v1/admin/users", params={"role": "god"}, headers=auth),
        422,
        "validation_error",
    )


async def test_user_detail(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    uid = (await client.get("/api/v1/admin/users", params={"q": "dev@"}, headers=auth)).json()[
        "items"
    ][0]["id"]
    detail = (await client.get(f"/api/v1/users/{uid}", headers=auth)).json()
    assert detail["sessions"] == 2
    assert detail["last_login_at"]
    assert_problem(
        await client.get("/api/v1/admin/users/no-such-user", headers=auth), 404, "user_not_found"
    )


async def test_role_change_ends_sessions_at_once(
    console: tuple[Litestar, Client, dict[str, str]], console_settings: Settings
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["dev"])
    uid = (await client.get("/api/v1/admin/users", params={"q": "user@"}, headers=auth)).json()[
        "items"
    ][0]["id"]
    assert_problem(
        await client.patch(f"/api/v1/admin/users/{uid}", json={"role": "root"}, headers=auth),
        422,
        "validation_error",
    )
    assert_problem(
        await client.patch(f"/api/v1/admin/users/{uid}", json={"email": "x@y.z"}, headers=auth),
        422,
        "validation_error",
    )
    changed = await client.put(f"/api/v1/admin/users/{uid}", json={"role": "admin"}, headers=auth)
    assert changed.json()["role"] == "admin"
    assert_problem(
        await client.get("/api/v1/users/me", headers=bearer(tokens["user"])), 401, "token_revoked"
    )
    alerts = await fetch(console_settings, "SELECT rule, severity FROM security_alerts")
    assert [(a.rule, a.severity) for a in alerts] == [("role_elevated", "high")]
    audit = await fetch(
        console_settings, "SELECT details FROM audit_events WHERE action = 'user.changed'"
    )
    assert len(audit) == 1
    assert_problem(
        await client.patch("/api/v1/admin/users/nobody", json={"role": "user"}, headers=auth),
        404,
        "user_not_found",
    )


async def test_the_last_dev_stays(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    # The only dev can only try it on themselves, which is refused first; two devs demoting each
    # other at once are tests/api/test_races.py's.
    _, client, tokens = console
    auth = bearer(tokens["dev"])
    uid = (await client.get("/api/v1/admin/users", params={"q": "dev@"}, headers=auth)).json()[
        "items"
    ][0]["id"]
    assert_problem(
        await client.patch(f"/api/v1/admin/users/{uid}", json={"role": "admin"}, headers=auth),
        409,
        "cannot_modify_self",
    )
    assert_problem(
        await client.patch(f"/api/v1/admin/users/{uid}", json={"is_active": False}, headers=auth),
        409,
        "cannot_modify_self",
    )
    assert (
        await client.get("/api/v1/admin/summary", headers=auth)
    ).status_code == 200  # nothing changed


async def test_end_a_users_sessions(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    auth = bearer(tokens["dev"])
    uid = (await client.get("/api/v1/admin/users", params={"q": "user@"}, headers=auth)).json()[
        "items"
    ][0]["id"]
    ended = await client.delete(f"/api/v1/admin/users/{uid}/sessions", headers=auth)
    assert ended.json() == {"sessions_ended": 1}
    assert_problem(
        await client.get("/api/v1/users/me", headers=bearer(tokens["user"])), 401, "token_revoked"
    )


async def test_logs_filter_and_page_by_cursor(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    for _ in range(3):
        await login(client, "user@example.com", password="wrong horse battery")
    everything = (
        await client.get("/api/v1/admin/logs", params={"limit": 100}, headers=auth)
    ).json()["items"]
    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/admin/logs", params=params, headers=auth)).json()
        walked += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == [item["id"] for item in everything]
    failed = (
        await client.get(
            "/api/v1/admin/audit-events", params={"event_type": "login.failed"}, headers=auth
        )
    ).json()
    assert len(failed["items"]) == 3
    assert {item["action"] for item in failed["items"]} == {"login.failed"}
    for bad in ({"cursor": "garbage!"}, {"since": "yesterday"}, {"limit": "many"}):
        assert_problem(
            await client.get("/api/v1/admin/logs", params=bad, headers=auth),
            422,
            "validation_error",
        )
    huge = await client.get("/api/v1/admin/logs", params={"limit": 10**9, "page": -5}, headers=auth)
    assert huge.json()["page_size"] == 100


async def test_alerts_and_idempotent_acknowledgement(
    console: tuple[Litestar, Client, dict[str, str]], console_settings: Settings
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    for _ in range(5):
        await login(client, "user@example.com", password="wrong horse battery")
    open_alerts = (
        await client.get("/api/v1/admin/alerts", params={"only_unacknowledged": True}, headers=auth)
    ).json()["items"]
    [lockout] = [a for a in open_alerts if a["rule"] == "account_lockout"]
    first = (await client.patch(f"/api/v1/admin/alerts/{lockout['id']}/ack", headers=auth)).json()
    second = (
        await client.patch(
            f"/api/v1/admin/alerts/{lockout['id']}/ack", headers=bearer(tokens["dev"])
        )
    ).json()
    assert first["acknowledged_at"] == second["acknowledged_at"]
    assert second["acknowledged_by"] == first["acknowledged_by"]
    assert (
        await client.get("/api/v1/admin/alerts", params={"only_unacknowledged": True}, headers=auth)
    ).json()["items"] == []
    assert_problem(
        await client.patch("/api/v1/admin/alerts/nope/ack", headers=auth), 404, "alert_not_found"
    )
    medium = (
        await client.get("/api/v1/admin/alerts", params={"severity": "medium"}, headers=auth)
    ).json()["items"]
    assert [a["rule"] for a in medium] == ["account_lockout"]


async def test_csv_export_is_safe_and_streams(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    empty = await client.get("/api/v1/admin/contacts", params={"format": "csv"}, headers=auth)
    assert empty.text.strip().startswith("id,created_at,name,email,message")
    await client.post(
        "/api/v1/waitlist", json={"email": "a@example.com", "source": '=HYPERLINK("http://evil")'}
    )
    await client.post(
        "/api/v1/waitlist", json={"email": "b@example.com", "name": "+cmd|' /C calc'!A0"}
    )
    export = await client.get("/api/v1/admin/waitlist", params={"format": "csv"}, headers=auth)
    assert export.status_code == 200, export.text
    assert export.text.startswith("id,"), export.text[:300]
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith('attachment; filename="waitlist-')
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {row["email"] for row in rows} == {"a@example.com", "b@example.com"}
    cells = [value for row in rows for value in row.values() if value]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert "'=HYPERLINK" in export.text
    assert "ip" not in rows[0]
    page = await client.get("/api/v1/admin/waitlist", params={"page_size": 1}, headers=auth)
    paged_csv = {"format": "csv", "cursor": page.json()["next_cursor"]}
    problem = assert_problem(
        await client.get("/api/v1/admin/waitlist", params=paged_csv, headers=auth),
        422,
        "validation_error",
    )
    assert [error["field"] for error in problem["errors"]] == ["cursor"]
    empty_cursor = {"format": "csv", "cursor": ""}  # none, as on the JSON list's first page
    exported = await client.get("/api/v1/admin/waitlist", params=empty_cursor, headers=auth)
    assert exported.status_code == 200, exported.text
    assert exported.text == export.text


async def test_cookie_activity(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    await client.post(
        "/api/v1/analytics/events",
        json={"event_type": "cookie_consent", "action": "accepted", "client_id": "c9"},
    )
    listed = (
        await client.get(
            "/api/v1/admin/cookie-activity",
            params={"client_id": "c9"},
            headers=bearer(tokens["admin"]),
        )
    ).json()
    assert [e["action"] for e in listed["items"]] == ["accepted"]


async def test_cookie_activity_pages_by_cursor(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    for action in ("accepted", "declined", "accepted"):
        sent = await client.post(
            "/api/v1/analytics/events",
            json={"event_type": "cookie_consent", "action": action, "client_id": "pager"},
        )
        assert sent.status_code < 300, sent.text
    path = "/api/v1/admin/cookie-activity"
    first = await client.get(path, params={"client_id": "pager", "limit": 2}, headers=auth)
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 2
    assert first.json()["next_cursor"]
    second = await client.get(
        path,
        params={"client_id": "pager", "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=auth,
    )
    [third] = second.json()["items"]
    assert third["id"] not in {e["id"] for e in first.json()["items"]}
    assert all(third["created_at"] <= e["created_at"] for e in first.json()["items"])
    assert second.json()["next_cursor"] is None
    forged = await client.get(path, params={"cursor": "bm90IGEgY3Vyc29y"}, headers=auth)
    assert assert_problem(forged, 422, "validation_error")["errors"][0]["field"] == "cursor"


async def test_send_email_validation(console: tuple[Litestar, Client, dict[str, str]]) -> None:
    _, client, tokens = console
    auth = bearer(tokens["dev"])
    for bad in (
        {"to": "nope", "subject": "s", "body": "b"},
        {"to": "a@example.com", "subject": "", "body": "b"},
        {"to": "a@example.com"},
    ):
        assert_problem(
            await client.post("/api/v1/admin/send-email", json=bad, headers=auth),
            422,
            "validation_error",
        )


@pytest.mark.parametrize(
    "subject", ["a\x85b", "a\u2028b", "a\u2029b", "a\x0bb", "a\x1cb", "a\x9bb", "a\rb"]
)
async def test_a_subject_with_any_line_break_is_refused(
    console: tuple[Litestar, Client, dict[str, str]], subject: str
) -> None:
    app, client, tokens = console
    auth = bearer(tokens["dev"])
    mail = {"to": "a@example.com", "subject": subject, "body": "b"}
    queued = "SELECT id FROM outbox_messages"
    before = await fetch(app.state.settings, queued)
    refused = await client.post("/api/v1/admin/send-email", json=mail, headers=auth)
    body = assert_problem(refused, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["subject"]
    assert await fetch(app.state.settings, queued) == before


async def test_a_non_ascii_subject_is_sent(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    _, client, tokens = console
    mail = {"to": "a@example.com", "subject": "Grüße — 日本語 ✓", "body": "b"}
    sent = await client.post("/api/v1/admin/send-email", json=mail, headers=bearer(tokens["dev"]))
    assert sent.status_code == 202, sent.text
    built = to_mime(OutgoingEmail("a@example.com", mail["subject"], "b"), "ops@example.com")
    assert b"Subject: =?utf-8?" in built.as_bytes()  # the adapter can build it (RFC 2047)


async def test_high_alerts_are_mailed_to_operators(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        ENV="development", INPROCESS_WORKER="false", ALERT_EMAILS="sec@example.com, ops@example.com"
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        await create_account(app, "dev@example.com", Role.DEV)
        await register(client, "user@example.com")
        dev = (await login(client, "dev@example.com", scope="dev", otp="000000")).json()[
            "access_token"
        ]
        client.cookies.clear()
        uid = (
            await client.get("/api/v1/admin/users", params={"q": "user@"}, headers=bearer(dev))
        ).json()["items"][0]["id"]
        await client.patch(
            f"/api/v1/admin/users/{uid}", json={"role": "admin"}, headers=bearer(dev)
        )
        await client.patch(
            f"/api/v1/admin/users/{uid}", json={"role": "dev"}, headers=bearer(dev)
        )  # same open alert
    mails = await fetch(
        settings, "SELECT recipient, subject FROM outbox_messages WHERE subject LIKE '[Orbsurv]%'"
    )
    assert sorted(m.recipient for m in mails) == ["ops@example.com", "sec@example.com"]
    assert all("role_elevated" in m.subject for m in mails)


async def test_streams_refuse_offset_pages_and_point_to_the_cursor(
    console: tuple[Litestar, Client, dict[str, str]],
) -> None:
    _, client, tokens = console
    auth = bearer(tokens["admin"])
    for path in (
        "/api/v1/admin/logs",
        "/api/v1/admin/audit-events",
        "/api/v1/admin/alerts",
        "/api/v1/admin/cookie-activity",
        "/api/v1/admin/waitlist",
    ):
        refused = await client.get(path, params={"page": 2}, headers=auth)
        assert refused.status_code == 422, path
        assert refused.json()["errors"][0]["field"] == "page"
        assert "cursor" in refused.json()["errors"][0]["message"]
        first = await client.get(path, params={"page": 1}, headers=auth)
        assert first.status_code == 200, path


VIEWS = [
    "/api/v1/admin/summary",
    "/api/v1/admin/users",
    "/api/v1/admin/logs",
    "/api/v1/admin/audit-events",
    "/api/v1/admin/alerts",
    "/api/v1/admin/cookie-activity",
    "/api/v1/admin/waitlist",
    "/api/v1/admin/client-errors",
]


async def test_console_pages_never_queue_behind_a_writer(
    console: tuple[Litestar, Client, dict[str, str]], console_settings: Settings
) -> None:
    """SQLite has one write lock, and a transaction that may write begins IMMEDIATE and waits
    for it (busy handler: sleeps of up to 100 ms, 15 s in all). The console's pages only read:
    while another connection holds the write lock they still answer at once (they once queued
    with the writers, and the hot-path benchmark saw a p99 near one second)."""
    _, client, tokens = console
    admin = bearer(tokens["admin"])
    engine = make_engine(console_settings.database_url)
    try:
        async with engine.connect() as writer:
            await writer.execute(sa.text("UPDATE users SET name = name"))  # takes the write lock
            for path in VIEWS:
                answer = await asyncio.wait_for(client.get(path, headers=admin), timeout=5)
                assert answer.status_code == 200, (path, answer.text)
            await writer.rollback()
    finally:
        await engine.dispose()
