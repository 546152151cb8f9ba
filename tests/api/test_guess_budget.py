"""One guessing budget per account: sign-in by email or username and the current-password
checks of the portal all spend it, and all answer 429 ``too_many_attempts`` once it is spent.
One-time codes have a budget of their own that only a right code gives back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest
from litestar import Litestar

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    PASSWORD,
    Client,
    ClockProvider,
    bearer,
    create_account,
    disable,
    enrol,
    fetch,
    login,
    next_code,
    wrong_code,
)
from tests.api.test_account import deliver, token_in
from tests.api.test_conventions import assert_problem
from tests.api.test_races import serve
from tests.conftest import SettingsFactory, SmtpServer, truncate_all
from tests.fakes.identity import FakeClock

WRONG = "not the password at all"


async def sign_up(client: Client) -> str:
    answer = await client.post(
        "/api/v1/auth/register",
        json={"email": "lk@example.com", "password": PASSWORD, "username": "lkuser"},
    )
    assert answer.status_code == 201, answer.text
    client.cookies.clear()
    token: str = answer.json()["access_token"]
    return token


def assert_locked(answer: Any) -> None:
    assert_problem(answer, 429, "too_many_attempts")
    assert 0 < int(answer.headers["retry-after"]) <= 900


async def test_email_and_username_share_one_budget(client: Client) -> None:
    await sign_up(client)
    for _ in range(5):
        assert_problem(
            await login(client, "lk@example.com", password=WRONG), 401, "invalid_credentials"
        )
    by_username = await client.post(
        "/api/v1/auth/login", json={"username": "lkuser", "password": PASSWORD}
    )
    assert_locked(by_username)
    assert_locked(await login(client, "LK@example.com"))


async def test_guesses_by_username_lock_the_email_too(client: Client) -> None:
    await sign_up(client)
    for _ in range(5):
        wrong = await client.post(
            "/api/v1/auth/login", json={"username": "LKUSER", "password": WRONG}
        )
        assert_problem(wrong, 401, "invalid_credentials")
    assert_locked(await login(client, "lk@example.com"))


async def test_unknown_accounts_keep_their_own_budget(client: Client) -> None:
    await sign_up(client)
    for _ in range(5):
        assert_problem(
            await login(client, "nobody@example.com", password=WRONG), 401, "invalid_credentials"
        )
    assert_locked(await login(client, "nobody@example.com", password=WRONG))
    assert (await login(client, "lk@example.com")).status_code == 200


def _check(route: str, password: str) -> tuple[str, str, dict[str, Any]]:
    bodies: dict[str, tuple[str, str, dict[str, Any]]] = {
        "password": (
            "PATCH",
            "/api/v1/account/password",
            {"current_password": password, "new_password": "a much better horse"},
        ),
        "email": (
            "PATCH",
            "/api/v1/account/email",
            {"new_email": "new@example.com", "current_password": password},
        ),
        "otp_setup": ("POST", "/api/v1/auth/otp/setup", {"password": password}),
        "otp_disable": ("DELETE", "/api/v1/auth/otp", {"password": password, "otp": "123456"}),
    }
    return bodies[route]


@pytest.mark.parametrize("route", ["password", "email", "otp_setup", "otp_disable"])
async def test_current_password_checks_spend_the_account_budget(client: Client, route: str) -> None:
    auth = bearer(await sign_up(client))
    for _ in range(5):
        method, path, body = _check(route, WRONG)
        wrong = await client.request(method, path, json=body, headers=auth)
        assert_problem(wrong, 400, "wrong_password")
    method, path, body = _check(route, PASSWORD)
    assert_locked(await client.request(method, path, json=body, headers=auth))  # even right
    assert_locked(await login(client, "lk@example.com"))  # the same budget as sign-in
    assert_locked(
        await client.post("/api/v1/auth/login", json={"username": "lkuser", "password": PASSWORD})
    )


async def test_a_right_current_password_clears_the_count(client: Client) -> None:
    auth = bearer(await sign_up(client))
    for _ in range(4):
        assert_problem(
            await login(client, "lk@example.com", password=WRONG), 401, "invalid_credentials"
        )
    setup = await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth)
    assert setup.status_code == 200, setup.text
    for _ in range(4):
        assert_problem(
            await login(client, "lk@example.com", password=WRONG), 401, "invalid_credentials"
        )
    assert (await login(client, "lk@example.com")).status_code == 200


async def otp_enabled(client: Client, auth: dict[str, str]) -> bool:
    me = await client.get("/api/v1/auth/me", headers=auth)
    assert me.status_code == 200, me.text
    return bool(me.json()["otp_enabled"])


async def test_wrong_codes_at_otp_disable_spend_the_budget(client: Client) -> None:
    auth = bearer(await sign_up(client))
    totp = await enrol(client, auth)
    for n in range(5):
        assert_problem(await disable(client, auth, wrong_code(totp, n)), 400, "invalid_otp")
    assert_locked(await disable(client, auth, next_code(totp)))  # even the right code
    assert await otp_enabled(client, auth)
    assert_locked(await login(client, "lk@example.com"))  # the password's guesses stay spent


async def test_a_right_password_gives_no_code_guesses_back(client: Client) -> None:
    auth = bearer(await sign_up(client))
    totp = await enrol(client, auth)
    for n in range(4):
        assert_problem(await disable(client, auth, wrong_code(totp, n)), 400, "invalid_otp")
    # A plain sign-in and a password-only check both prove the password right ...
    assert (await login(client, "lk@example.com")).status_code == 200
    setup = await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth)
    assert_problem(setup, 409, "otp_already_enabled")
    # ... and neither gives back a guess of the code budget.
    assert_problem(await disable(client, auth, wrong_code(totp, 7)), 400, "invalid_otp")
    assert_locked(await disable(client, auth, next_code(totp)))
    assert await otp_enabled(client, auth)


async def test_a_right_code_gives_the_code_guesses_back(client: Client) -> None:
    auth = bearer(await sign_up(client))
    totp = await enrol(client, auth)
    for n in range(4):
        assert_problem(await disable(client, auth, wrong_code(totp, n)), 400, "invalid_otp")
    turned_off = await disable(client, auth, next_code(totp))
    assert turned_off.status_code == 200, turned_off.text
    assert not await otp_enabled(client, auth)
    totp = await enrol(client, auth)
    for n in range(4):  # a fresh budget
        assert_problem(await disable(client, auth, wrong_code(totp, n)), 400, "invalid_otp")


async def test_wrong_codes_at_otp_confirm_spend_the_budget(client: Client) -> None:
    auth = bearer(await sign_up(client))
    setup = await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth)
    totp = pyotp.TOTP(setup.json()["secret"])
    for n in range(5):
        wrong = await client.post(
            "/api/v1/auth/otp/confirm", json={"otp": wrong_code(totp, n)}, headers=auth
        )
        assert_problem(wrong, 400, "invalid_otp")
    right = await client.post("/api/v1/auth/otp/confirm", json={"otp": totp.now()}, headers=auth)
    assert_locked(right)
    assert not await otp_enabled(client, auth)


async def test_plain_sign_ins_give_no_dev_code_guesses_back(app: Litestar, client: Client) -> None:
    await create_account(app, "dev@example.com", Role.DEV)
    plain = await login(client, "dev@example.com")
    auth = bearer(plain.json()["access_token"])
    client.cookies.clear()
    totp = await enrol(client, auth)
    for n in range(4):
        wrong = await login(client, "dev@example.com", scope="dev", otp=wrong_code(totp, n))
        assert_problem(wrong, 401, "invalid_otp")
    assert (await login(client, "dev@example.com")).status_code == 200  # password only
    last = await login(client, "dev@example.com", scope="dev", otp=wrong_code(totp, 9))
    assert_problem(last, 401, "invalid_otp")
    assert_locked(await login(client, "dev@example.com", scope="dev", otp=next_code(totp)))
    # whatever the password: the lock says nothing about it
    assert_locked(
        await login(client, "dev@example.com", scope="dev", otp=next_code(totp), password=WRONG)
    )


# --- strangers cannot lock the owner out (OWASP: lock-outs per account and client) ----------


OWNER = {"X-Forwarded-For": "198.51.100.20"}
STRANGER = {"X-Forwarded-For": "203.0.113.66"}


@pytest.fixture
async def edge(
    database_url: str,
    make_settings: SettingsFactory,
    smtp_server: SmtpServer,
) -> tuple[Litestar, Settings, FakeClock]:
    """The app behind a trusted proxy (so each request names its client), with mail to the
    test SMTP server, a clock the test moves, and no in-process worker (``deliver`` runs it)."""
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(
        DATABASE_URL=database_url,
        TRUSTED_PROXIES="127.0.0.1/32",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="plain",
        INPROCESS_WORKER="false",
    )
    clock = FakeClock(datetime.now(UTC))
    return make_app(settings, ClockProvider(clock)), settings, clock


async def ask_reset(client: Any, email: str, headers: dict[str, str]) -> Any:
    return await client.post(
        "/api/v1/auth/password-reset/requests", json={"email": email}, headers=headers
    )


async def test_strangers_cannot_lock_the_owner_out_of_sign_in_or_recovery(
    edge: tuple[Litestar, Settings, FakeClock], smtp_server: SmtpServer
) -> None:
    """Five wrong sign-ins and five reset requests naming the owner, all from one anonymous
    address, locked the owner's right sign-in (429, Retry-After 900) and the owner's reset
    request (429, Retry-After 3600) from anywhere, again and again. Expected: the stranger's
    failures lock only the stranger's own client; the owner signs in from theirs, is told of the
    lock-out once, and asks for a reset with the same 202 as anyone, holding a working link."""
    app, settings, _ = edge
    async with serve(app) as client:
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=OWNER,
        )
        assert registered.status_code == 201, registered.text
        client.cookies.clear()
        await deliver(app)
        smtp_server.messages.clear()

        for _ in range(2):  # repeatably
            for _ in range(5):
                wrong = await client.post(
                    "/api/v1/auth/login",
                    json={"email": "LK@example.com ", "password": WRONG},
                    headers=STRANGER,
                )
                assert wrong.status_code in (401, 429), wrong.text
            for _ in range(5):
                assert (await ask_reset(client, "lk@example.com", STRANGER)).status_code == 202
            stranger = await client.post(
                "/api/v1/auth/login",
                json={"email": "lk@example.com", "password": PASSWORD},
                headers=STRANGER,
            )
            assert_locked(stranger)  # the guesser's own client stays locked
            owner = await client.post(
                "/api/v1/auth/login",
                json={"email": "lk@example.com", "password": PASSWORD},
                headers=OWNER,
            )
            assert owner.status_code == 200, owner.text
            client.cookies.clear()
            known = await ask_reset(client, "lk@example.com", OWNER)
            unknown = await ask_reset(client, "nobody@example.com", OWNER)
            assert known.status_code == unknown.status_code == 202, known.text
            assert known.json() == unknown.json()

        await deliver(app)
        mails = [m for m in smtp_server.messages if m["To"] == "lk@example.com"]
        subjects = [m["Subject"] for m in mails]
        assert subjects.count("Sign-ins to your account were paused") == 1  # once per lock-out
        resets = [m for m in mails if m["Subject"] == "Reset your password"]
        assert len(resets) == 5  # counted per account: no new mail while a sent link lives
        done = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token_in(resets[-1]), "new_password": "a much better horse"},
            headers=OWNER,
        )
        assert done.status_code == 200, done.text
        locked_out = await fetch(
            settings, "SELECT action FROM audit_events WHERE action = 'login.locked_out'"
        )
        assert len(locked_out) == 1
        alerts = await fetch(settings, "SELECT rule, subject FROM security_alerts")
        assert ("account_lockout", "lk@example.com") in {(r.rule, r.subject) for r in alerts}


async def test_a_spent_mail_budget_still_sends_a_link_once_none_is_live(
    edge: tuple[Litestar, Settings, FakeClock], smtp_server: SmtpServer
) -> None:
    """The account's reset mails are counted in the database; past the budget nothing new is
    sent while a link lives, and a new link goes out once the last one expired, so the owner
    always holds a working link."""
    app, _, clock = edge
    async with serve(app) as client:
        await client.post(
            "/api/v1/auth/register",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=OWNER,
        )
        client.cookies.clear()
        for _ in range(8):
            assert (await ask_reset(client, "lk@example.com", STRANGER)).status_code == 202
        await deliver(app)
        resets = [m for m in smtp_server.messages if m["Subject"] == "Reset your password"]
        assert len(resets) == 5
        clock.advance(minutes=31)  # every link sent has expired (30 min)
        assert (await ask_reset(client, "lk@example.com", OWNER)).status_code == 202
        await deliver(app)
        resets = [m for m in smtp_server.messages if m["Subject"] == "Reset your password"]
        assert len(resets) == 6
        done = await client.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token_in(resets[-1]), "new_password": "a much better horse"},
        )
        assert done.status_code == 200, done.text


async def test_strangers_cannot_spend_the_owners_verification_resends(
    edge: tuple[Litestar, Settings, FakeClock], smtp_server: SmtpServer
) -> None:
    """``POST /auth/verify/resend`` had the same per-address budget: five requests naming the
    owner made the owner's own resend a 429. Expected: 202 for everyone; mails bounded per
    account."""
    app, _, _ = edge
    async with serve(app) as client:
        await client.post(
            "/api/v1/auth/register",
            json={"email": "lk@example.com", "password": PASSWORD},
            headers=OWNER,
        )
        client.cookies.clear()
        for _ in range(6):
            stranger = await client.post(
                "/api/v1/auth/verify/resend", json={"email": "lk@example.com"}, headers=STRANGER
            )
            assert stranger.status_code == 202, stranger.text
        owner = await client.post(
            "/api/v1/auth/verify/resend", json={"email": "lk@example.com"}, headers=OWNER
        )
        assert owner.status_code == 202, owner.text
        await deliver(app)
        verifications = [
            m for m in smtp_server.messages if m["Subject"] == "Confirm your email address"
        ]
        assert len(verifications) == 5  # the sign-up's and four resends: then a link is live
        verified = await client.get(
            "/api/v1/auth/verify", params={"token": token_in(verifications[-1])}
        )
        assert verified.status_code == 200, verified.text


async def test_the_per_ip_budget_still_limits_mail_requests(
    edge: tuple[Litestar, Settings, FakeClock],
) -> None:
    app, _, _ = edge
    async with serve(app) as client:
        for n in range(20):
            assert (await ask_reset(client, f"x{n}@example.com", STRANGER)).status_code == 202
        limited = await ask_reset(client, "lk@example.com", STRANGER)
        assert_problem(limited, 429, "rate_limited")
        assert (await ask_reset(client, "lk@example.com", OWNER)).status_code == 202
