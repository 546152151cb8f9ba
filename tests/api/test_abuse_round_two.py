"""Attacks on the abuse limits and upload rules, each the smallest request sequence that once
succeeded, asserting what the contract asks for: a client's own X-Forwarded-For line, one IPv6
site's /64 networks, a case variant of a package name, a malformed body at a console write, a
sign-up through an order, and email-change mails to a stranger."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from tests.api.identity_helpers import PASSWORD, fetch, sign_up
from tests.api.test_races import serve
from tests.conftest import SettingsFactory

BOUNDARY = "orbsurvboundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(*parts: tuple[str, bytes, str | None]) -> bytes:
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def forwarded(spoofed: str, appended: str) -> list[tuple[str, str]]:
    """What a proxy that appends its own ``X-Forwarded-For`` line (HAProxy's ``option
    forwardfor``) passes on: the client's line first, the proxy's line with the real client
    last. RFC 9110 section 5.3: the lines are one list, in order."""
    return [("x-forwarded-for", spoofed), ("x-forwarded-for", appended)]


async def test_a_second_forwarded_for_line_is_the_client_not_the_first(
    make_settings: SettingsFactory,
) -> None:
    """Behind a trusted proxy that appends its own X-Forwarded-For line, a client that sends a
    line of its own with a new address each time gets a fresh analytics budget each time (the
    first line is read, the proxy's line ignored). Expected: the last hop of all lines decides
    (10.9.9.9 here), so the third request is 429."""
    settings = make_settings(TRUSTED_PROXIES="127.0.0.1/32", ANALYTICS_RATE_LIMIT="2")
    event = {"event_type": "page_view", "action": "view"}
    async with serve(make_app(settings)) as client:
        codes = [
            (
                await client.post(
                    "/api/v1/analytics/events",
                    json=event,
                    headers=forwarded(f"10.8.8.{n}", "10.9.9.9"),
                )
            ).status_code
            for n in range(3)
        ]
    assert codes == [202, 202, 429]


async def test_a_stranger_behind_an_appending_proxy_cannot_lock_the_owner_out(
    make_settings: SettingsFactory,
) -> None:
    """The same spoofed first line turns the per-(account, client) lock-out into the account's
    ceiling: 100 wrong passwords from one real address (20 spoofed addresses x 5) lock the owner
    out everywhere. Expected: the stranger's client (203.0.113.66) is locked after 5, and the
    owner, from another address, signs in."""
    settings = make_settings(TRUSTED_PROXIES="127.0.0.1/32")
    async with serve(make_app(settings)) as client:
        owner = [("x-forwarded-for", "198.51.100.20")]
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=owner,
        )
        assert registered.status_code == 201, registered.text
        client.cookies.clear()
        for n in range(100):
            await client.post(
                "/api/v1/auth/login",
                json={"email": "lk@example.com", "password": "not the password at all"},
                headers=forwarded(f"10.{n // 250}.{n % 250}.1", "203.0.113.66"),
            )
        answer = await client.post(
            "/api/v1/auth/login",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=owner,
        )
    assert answer.status_code == 200, answer.text


async def test_package_names_of_one_owner_compare_case_insensitively(
    make_settings: SettingsFactory,
) -> None:
    """``POST /software-packages`` with name ``pkg`` and then ``PKG`` (same owner, same
    version) made two packages. The contract: package names compare case-insensitively, so the
    second names the first in another spelling (409 ``package_name_taken``, which names the
    spelling to use) and no second package exists."""
    settings = make_settings()
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client, "mp@example.com")
        answers: list[Any] = []
        for name, data in ((b"pkg", b"a"), (b"PKG", b"b")):
            answers.append(
                await client.post(
                    "/api/v1/software-packages",
                    content=multipart(
                        ("name", name, None), ("version", b"1.0.0", None), ("file", data, "a.bin")
                    ),
                    headers={**auth, **MULTIPART},
                )
            )
    assert answers[0].status_code == 201, answers[0].text
    assert answers[1].status_code == 409, answers[1].text
    assert answers[1].json()["code"] == "package_name_taken"
    assert len(await fetch(settings, "SELECT id FROM packages")) == 1


async def test_a_refused_console_write_is_403_whatever_its_body(
    make_settings: SettingsFactory,
) -> None:
    """An admin without a dev session who sends ``PUT /admin/users/{id}/storage-quota`` with a
    body that is not JSON (``{bad``) is told 400 ``malformed_body`` and no ``access.denied`` row
    is written: the body is read before the gate settles the caller. Expected: 403 ``forbidden``
    and the refusal audited, as for a well-formed body."""
    from orbsurv.domain.identity import Role
    from tests.api.test_package_governance import account

    settings = make_settings(ENV="development", INPROCESS_WORKER="false")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        admin = await account(app, client, "admin@example.com", Role.ADMIN)
        [row] = await fetch(settings, "SELECT id FROM users WHERE email = 'admin@example.com'")
        answer = await client.put(
            f"/api/v1/admin/users/{row.id}/storage-quota",
            content=b"{bad",
            headers={**admin, "content-type": "application/json"},
        )
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "forbidden"
    denied = await fetch(settings, "SELECT id FROM audit_events WHERE action = 'access.denied'")
    assert len(denied) == 1


async def test_sign_up_through_an_order_spends_the_registration_budget(
    make_settings: SettingsFactory, smtp_server: Any
) -> None:
    """With the registration budget of the client spent (``REGISTRATION_RATE_LIMIT=1``: one
    ``POST /auth/register``, the next 429), the same client still creates accounts through
    ``POST /orders`` + ``POST /auth/register-from-order`` (the forms' budget, 10 per 10 minutes,
    is the only limit: 60 accounts an hour instead of 10). Expected: a sign-up from an order is
    a registration and answers 429 ``rate_limited`` too, creating nothing."""
    from tests.api.test_account import deliver, mail_to, token_in
    from tests.api.test_orders import cart_item

    settings = make_settings(
        REGISTRATION_RATE_LIMIT="1",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="none",
        ORDER_SIGNUP_URL="https://www.example.com/signup.html",
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        first = await client.post(
            "/api/v1/auth/register", json={"email": "one@example.com", "password": PASSWORD}
        )
        assert first.status_code == 201, first.text
        client.cookies.clear()
        second = await client.post(
            "/api/v1/auth/register", json={"email": "two@example.com", "password": PASSWORD}
        )
        assert second.status_code == 429, second.text
        order = await client.post(
            "/api/v1/orders", json=cart_item("starter", 299, email="three@example.com")
        )
        assert order.status_code == 201, order.text
        await deliver(app)
        [mail] = mail_to(smtp_server, "three@example.com")
        answer = await client.post(
            "/api/v1/auth/register-from-order",
            json={"token": token_in(mail), "password": PASSWORD},
        )
    assert answer.status_code == 429, answer.text
    assert len(await fetch(settings, "SELECT id FROM users")) == 1


async def test_one_ipv6_site_cannot_spend_the_account_ceiling(
    make_settings: SettingsFactory,
) -> None:
    """One IPv6 end site is delegated a /56 or /48 (RFC 6177): 256 or more /64 networks. Each
    /64 is a fresh client for the (account, client) budget, so 20 of them from one site (5 wrong
    passwords each) spend the account-wide ceiling of 100 and lock the owner out from every
    address for 15 minutes, again each window. Expected: one site is one client (its /56, or
    the ceiling not reachable from one site), so the owner, from elsewhere, still signs in."""
    settings = make_settings(TRUSTED_PROXIES="127.0.0.1/32")
    async with serve(make_app(settings)) as client:
        owner = {"x-forwarded-for": "198.51.100.20"}
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=owner,
        )
        assert registered.status_code == 201, registered.text
        client.cookies.clear()
        for n in range(100):
            await client.post(
                "/api/v1/auth/login",
                json={"email": "lk@example.com", "password": "not the password at all"},
                headers={"x-forwarded-for": f"2001:db8:0:{n // 5:x}::1"},
            )
        answer = await client.post(
            "/api/v1/auth/login",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=owner,
        )
    assert answer.status_code == 200, answer.text


async def test_email_change_requests_cannot_mail_a_stranger_without_bound(
    make_settings: SettingsFactory,
) -> None:
    """Any signed-up account sent 30 ``PATCH /account/email`` naming a stranger's address: all
    202, and 30 "Confirm your new email address" mails were queued to the stranger (plus 30
    notices to the account). Reset and verification mails are bounded per account (5 while a
    link lives); expected the same here: at most 5 mails reach the named address (the rest
    429 ``rate_limited`` or silently not sent)."""
    from tests.api.test_account import deliver

    settings = make_settings(INPROCESS_WORKER="false")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_up(client, "a@example.com")
        for _ in range(30):
            await client.patch(
                "/api/v1/account/email",
                json={"new_email": "victim@example.com", "current_password": PASSWORD},
                headers=auth,
            )
    await deliver(app)
    mails = await fetch(
        settings, "SELECT id FROM outbox_messages WHERE recipient = 'victim@example.com'"
    )
    assert len(mails) <= 5, len(mails)
