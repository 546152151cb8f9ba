"""Identity over HTTP: every route and every failure path of the contract."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pyotp
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
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory


def cookie_header(response: Any, name: str) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}="))


# --- registration ---------------------------------------------------------------------


async def test_register_returns_a_token_pair_and_cookies(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "Ada@Example.com", "password": PASSWORD, "role": "dev", "name": "Ada"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "role",
        "user",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["role"] == "user"
    assert body["user"]["email"] == "ada@example.com"
    access = cookie_header(response, "orbsurv_access")
    refresh = cookie_header(response, "orbsurv_refresh")
    csrf = cookie_header(response, "orbsurv_csrf")
    assert "HttpOnly" in access
    assert "Path=/;" in access
    assert "HttpOnly" in refresh
    assert "Path=/api/v1/auth" in refresh
    assert "SameSite=strict" in refresh
    assert "HttpOnly" not in csrf
    me = await client.get("/api/v1/users/me", headers=bearer(body["access_token"]))
    assert me.json()["id"] == body["user"]["id"]


async def test_register_twice_is_a_conflict(client: Client) -> None:
    await register(client)
    assert_problem(
        await client.post(
            "/api/v1/auth/register", json={"email": "ADA@example.com", "password": PASSWORD}
        ),
        409,
        "email_taken",
    )


async def test_register_with_required_verification_never_reveals_the_address(
    make_settings: SettingsFactory,
) -> None:
    app = make_app(make_settings(AUTH_REQUIRE_VERIFIED_EMAIL="true"))
    async with AsyncTestClient(app) as client:
        new = await client.post(
            "/api/v1/auth/register", json={"email": "a@example.com", "password": PASSWORD}
        )
        again = await client.post(
            "/api/v1/auth/register", json={"email": "a@example.com", "password": PASSWORD}
        )
        login_attempt = await login(client, "a@example.com")
    assert new.status_code == again.status_code == 202
    assert new.json() == again.json()
    assert "access_token" not in new.text
    assert not new.headers.get_list("set-cookie")
    assert_problem(login_attempt, 403, "email_not_verified")


# --- login ----------------------------------------------------------------------------


async def test_login_by_email_username_and_oauth2_form(client: Client, app: Litestar) -> None:
    await client.post(
        "/api/v1/users",
        json={"email": "ada@example.com", "password": PASSWORD, "username": "Ada_L"},
    )
    by_email = await login(client)
    by_username = await client.post(
        "/api/v1/auth/login", json={"username": "ada_l", "password": PASSWORD}
    )
    form = await client.post(
        "/api/v1/auth/login",
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": PASSWORD,
            "scope": "",
            "otp": "",
        },
    )
    web_client = await client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD, "otp": "", "scope": "user"},
    )
    for response in (by_email, by_username, form, web_client):
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "bearer"


async def test_wrong_password_and_unknown_account_answer_alike(client: Client) -> None:
    await register(client)
    wrong = await login(client, password="wrong horse battery")
    unknown = await login(client, "nobody@example.com")
    for response in (wrong, unknown):
        assert_problem(response, 401, "invalid_credentials")
        assert response.headers["www-authenticate"] == "Bearer"
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {"email": "a@example.com"}}, 422, "validation_error"),
        ({"json": {"password": PASSWORD}}, 422, "validation_error"),
        (
            {"json": {"email": "a@example.com", "password": PASSWORD, "scope": "root"}},
            422,
            "validation_error",
        ),
        ({"json": {"email": "a@example.com", "password": "x" * 5000}}, 422, "validation_error"),
        ({"json": {"email": "a@example.com", "password": 5}}, 422, "validation_error"),
        (
            {"content": b"email=a&password=b", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_body",
        ),
        (
            {
                "content": b'{"email": "a@example.com"}',
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            422,
            "validation_error",
        ),
        (
            {"content": b"x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            {
                "content": b'{"password": "' + b"p" * 10_000_000 + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "payload_too_large",
        ),
    ],
)
async def test_bad_login_input(
    client: Client, kwargs: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(await client.post("/api/v1/auth/login", **kwargs), status, code)


async def test_lockout_after_five_failures(client: Client, settings: Settings) -> None:
    await register(client)
    for _ in range(5):
        assert (await login(client, password="wrong horse battery")).status_code == 401
    locked = await login(client)  # even the right password
    body = assert_problem(locked, 429, "too_many_attempts")
    assert 800 < int(locked.headers["retry-after"]) <= 900
    assert "try again" in body["detail"]
    for _ in range(5):
        await login(client, "ghost@example.com", password="wrong horse battery")
    assert_problem(await login(client, "ghost@example.com"), 429, "too_many_attempts")
    actions = [row.action for row in await fetch(settings, "SELECT action FROM audit_events")]
    assert actions.count("login.locked_out") == 2
    assert actions.count("login.failed") == 10
    alerts = await fetch(settings, "SELECT rule, subject FROM security_alerts")
    assert {(row.rule, row.subject) for row in alerts} == {
        ("account_lockout", "ada@example.com"),
        ("account_lockout", "ghost@example.com"),
    }


async def test_many_failures_from_one_ip_block_that_ip(client: Client, settings: Settings) -> None:
    for n in range(20):
        await login(client, f"user{n}@example.com", password="wrong horse battery")
    assert_problem(await login(client, "fresh@example.com"), 429, "too_many_attempts")
    alerts = await fetch(settings, "SELECT rule FROM security_alerts WHERE rule = 'brute_force_ip'")
    assert len(alerts) == 1


# --- the dev scope ----------------------------------------------------------------------


async def test_dev_scope_needs_the_dev_role(client: Client, app: Litestar) -> None:
    await create_account(app, "admin@example.com", Role.ADMIN)
    assert_problem(
        await login(client, "admin@example.com", scope="dev", otp="123456"),
        403,
        "dev_role_required",
    )


async def test_dev_scope_needs_a_valid_single_use_totp(client: Client, app: Litestar) -> None:
    await create_account(app, "dev@example.com", Role.DEV)
    plain = (await login(client, "dev@example.com")).json()
    assert_problem(await login(client, "dev@example.com", scope="dev"), 401, "invalid_otp")
    assert_problem(await login(client, "dev@example.com", scope="dev", otp=""), 401, "invalid_otp")
    assert_problem(
        await login(client, "dev@example.com", scope="dev", otp="000000"), 401, "invalid_otp"
    )
    # A user-level session of a dev cannot reach the console.
    denied = await client.get("/api/v1/admin/ping", headers=bearer(plain["access_token"]))
    assert_problem(denied, 403, "dev_session_required")

    setup = await client.post(
        "/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=bearer(plain["access_token"])
    )
    totp = pyotp.TOTP(setup.json()["secret"])
    code = totp.now()
    confirmed = await client.post(
        "/api/v1/auth/otp/confirm", json={"otp": code}, headers=bearer(plain["access_token"])
    )
    assert confirmed.json() == {"otp_enabled": True}
    assert_problem(
        await login(client, "dev@example.com", scope="dev", otp=code), 401, "invalid_otp"
    )  # used
    next_code = totp.at(datetime.now(UTC).timestamp() + 30)
    dev = await login(client, "dev@example.com", scope="dev", otp=next_code)
    assert dev.status_code == 200, dev.text
    ping = await client.get("/api/v1/admin/ping", headers=bearer(dev.json()["access_token"]))
    assert ping.json() == {"status": "ok", "user_id": dev.json()["user"]["id"], "scope": "dev"}


async def test_master_otp_only_in_development(make_settings: SettingsFactory) -> None:
    for env, expected in (("development", 200), ("test", 401)):
        app = make_app(make_settings(ENV=env, INPROCESS_WORKER="false"))
        async with AsyncTestClient(app) as client:
            await create_account(app, f"dev-{env}@example.com", Role.DEV)
            response = await login(client, f"dev-{env}@example.com", scope="dev", otp="000000")
        assert response.status_code == expected, (env, response.text)


async def test_admin_cannot_use_the_dev_console_routes(client: Client, app: Litestar) -> None:
    await create_account(app, "admin@example.com", Role.ADMIN)
    token = (await login(client, "admin@example.com")).json()["access_token"]
    assert_problem(await client.get("/api/v1/admin/ping", headers=bearer(token)), 403, "forbidden")
    user = (await register(client, "u@example.com"))["access_token"]
    assert_problem(await client.get("/api/v1/admin/ping", headers=bearer(user)), 403, "forbidden")
    client.cookies.clear()
    assert_problem(await client.get("/api/v1/admin/ping"), 401, "unauthenticated")


# --- refresh ----------------------------------------------------------------------------


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_the_parent_is_graced(client: Client) -> None:
    pair = await register(client)
    child = await refresh(client, pair["refresh_token"])
    assert child.status_code == 200
    assert child.json()["refresh_token"] != pair["refresh_token"]
    again = await refresh(client, pair["refresh_token"])  # a lost answer, retried at once
    assert again.json()["refresh_token"] == child.json()["refresh_token"]
    assert (await refresh(client, child.json()["refresh_token"])).status_code == 200


async def test_grandparent_reuse_ends_the_session_at_once(
    client: Client, settings: Settings
) -> None:
    pair = await register(client)
    child = (await refresh(client, pair["refresh_token"])).json()
    grandchild = (await refresh(client, child["refresh_token"])).json()
    reused = await refresh(client, pair["refresh_token"])
    assert_problem(reused, 401, "refresh_token_reused")
    live = await client.get("/api/v1/users/me", headers=bearer(grandchild["access_token"]))
    assert_problem(live, 401, "token_revoked")
    assert_problem(await refresh(client, grandchild["refresh_token"]), 401, "invalid_refresh_token")
    alerts = await fetch(settings, "SELECT rule, severity FROM security_alerts")
    assert [(a.rule, a.severity) for a in alerts] == [("refresh_token_reuse", "high")]
    assert await fetch(settings, "SELECT id FROM audit_events WHERE action = 'refresh.reused'")


async def test_parallel_refresh_has_exactly_one_winner(client: Client, settings: Settings) -> None:
    pair = await register(client)
    answers = await asyncio.gather(*(refresh(client, pair["refresh_token"]) for _ in range(6)))
    assert {a.status_code for a in answers} == {200}
    assert (
        len({a.json()["refresh_token"] for a in answers}) == 1
    )  # the graced losers get the same child
    rows = await fetch(settings, "SELECT token_hash FROM refresh_tokens")
    assert len(rows) == 2  # the parent and one child, never more


async def test_without_grace_a_repeat_is_reuse(make_settings: SettingsFactory) -> None:
    app = make_app(make_settings(REFRESH_REUSE_GRACE_SECONDS="0"))
    async with AsyncTestClient(app) as client:
        pair = await register(client)
        first = await refresh(client, pair["refresh_token"])
        second = await refresh(client, pair["refresh_token"])
        after = await client.get("/api/v1/users/me", headers=bearer(first.json()["access_token"]))
    assert first.status_code == 200
    assert_problem(second, 401, "refresh_token_reused")
    assert_problem(after, 401, "token_revoked")


async def test_refresh_by_cookie_needs_the_csrf_header(client: Client) -> None:
    await register(client)  # the client keeps the cookies
    assert_problem(await client.post("/api/v1/auth/refresh"), 403, "csrf_failed")
    csrf = client.cookies["orbsurv_csrf"]
    ok = await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("token", ["", "nonsense", "x" * 600])
async def test_bad_refresh_tokens(client: Client, token: str) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code in {401, 422}
    assert response.json()["code"] in {"invalid_refresh_token", "validation_error"}


async def test_tokens_are_not_interchangeable(client: Client) -> None:
    pair = await register(client)
    as_access = await client.get("/api/v1/users/me", headers=bearer(pair["refresh_token"]))
    assert_problem(as_access, 401, "invalid_token")
    assert_problem(await refresh(client, pair["access_token"]), 401, "invalid_refresh_token")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("x@\uff45xample.com", "x@example.com"), ("x@xn--exmple-cua.com", "x@ex\u00e4mple.com")],
)
async def test_login_matches_an_address_as_registration_stored_it(
    client: Client, settings: Settings, typed: str, stored: str
) -> None:
    await register(client, typed)
    [row] = await fetch(settings, "SELECT email FROM users")
    assert row.email == stored
    for spelling in (typed, stored, f"  {typed.upper()} "):
        answer = await login(client, spelling)
        assert answer.status_code == 200, (spelling, answer.text)
    form = await client.post(
        "/api/v1/auth/login",
        data={"username": typed, "password": PASSWORD, "grant_type": "password"},
    )
    assert form.status_code == 200, form.text


async def test_login_guesses_in_any_spelling_spend_one_budget(client: Client) -> None:
    await register(client, "x@example.com")
    for _ in range(5):
        wrong = await login(client, "x@\uff45xample.com", password="not the password at all")
        assert_problem(wrong, 401, "invalid_credentials")
    assert_problem(await login(client, "x@example.com"), 429, "too_many_attempts")


@pytest.mark.parametrize("typed", ["a@@example.com", "a@exa mple.com", "\uff41@example.com"])
async def test_a_malformed_address_at_login_is_only_invalid_credentials(
    client: Client, typed: str
) -> None:
    await register(client)
    answer = await login(client, typed)
    assert_problem(answer, 401, "invalid_credentials")
    assert "valid" not in answer.json().get("detail", "").replace("invalid", "")


# --- logout and sessions ----------------------------------------------------------------


async def test_logout_with_the_access_token(client: Client) -> None:
    pair = await register(client)
    out = await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert out.status_code == 204
    assert any(
        c.startswith("orbsurv_access=;") or "Max-Age=0" in c
        for c in out.headers.get_list("set-cookie")
    )
    assert_problem(
        await client.get("/api/v1/users/me", headers=bearer(pair["access_token"])),
        401,
        "token_revoked",
    )
    assert_problem(await refresh(client, pair["refresh_token"]), 401, "invalid_refresh_token")


async def test_logout_with_only_the_refresh_token(client: Client) -> None:
    pair = await register(client)
    client.cookies.clear()
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert out.status_code == 204
    assert_problem(
        await client.get("/api/v1/users/me", headers=bearer(pair["access_token"])),
        401,
        "token_revoked",
    )


async def test_logout_everywhere_and_without_credentials(client: Client) -> None:
    first = await register(client)
    second = (await login(client)).json()
    client.cookies.clear()
    out = await client.post(
        "/api/v1/auth/logout", json={"everywhere": True}, headers=bearer(second["access_token"])
    )
    assert out.status_code == 204
    for pair in (first, second):
        assert (
            await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        ).status_code == 401
    assert_problem(await client.post("/api/v1/auth/logout"), 401, "unauthenticated")


async def logout_with(client: Client, token: str, everywhere: bool) -> Any:
    return await client.post(
        "/api/v1/auth/logout", json={"refresh_token": token, "everywhere": everywhere}
    )


async def signed_in(client: Client, pair: dict[str, Any]) -> bool:
    me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    return me.status_code == 200


@pytest.mark.parametrize("everywhere", [True, False])
async def test_a_token_spent_before_a_password_change_signs_nobody_out(
    client: Client, everywhere: bool
) -> None:
    await register(client)
    stolen = (await login(client)).json()
    assert (await refresh(client, stolen["refresh_token"])).status_code == 200  # now spent
    victim = (await login(client)).json()
    client.cookies.clear()
    changed = await client.patch(
        "/api/v1/account/password",
        headers=bearer(victim["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 200, changed.text
    out = await logout_with(client, stolen["refresh_token"], everywhere)
    assert_problem(out, 401, "invalid_refresh_token")
    assert await signed_in(client, victim)


@pytest.mark.parametrize("everywhere", [True, False])
async def test_a_rotated_token_past_its_grace_signs_nobody_out(
    make_settings: SettingsFactory, everywhere: bool
) -> None:
    app = make_app(make_settings(REFRESH_REUSE_GRACE_SECONDS="0"))
    async with AsyncTestClient(app) as client:
        await register(client)
        stolen = (await login(client)).json()
        child = (await refresh(client, stolen["refresh_token"])).json()
        other = (await login(client)).json()
        client.cookies.clear()
        out = await logout_with(client, stolen["refresh_token"], everywhere)
        assert_problem(out, 401, "invalid_refresh_token")
        assert await signed_in(client, child)  # the rotated session lives on
        assert await signed_in(client, other)
        assert (await refresh(client, child["refresh_token"])).status_code == 200


@pytest.mark.parametrize("everywhere", [True, False])
async def test_a_logged_out_token_signs_nobody_out(client: Client, everywhere: bool) -> None:
    await register(client)
    first = (await login(client)).json()
    other = (await login(client)).json()
    client.cookies.clear()
    assert (await logout_with(client, first["refresh_token"], False)).status_code == 204
    again = await logout_with(client, first["refresh_token"], everywhere)
    assert_problem(again, 401, "invalid_refresh_token")
    assert await signed_in(client, other)


async def test_a_just_rotated_token_ends_its_own_session_within_the_grace(client: Client) -> None:
    """Within the grace window the refresh route would hand the parent's holder the child, so
    logout lets the parent end that same session (and no other)."""
    await register(client)
    pair = (await login(client)).json()
    child = (await refresh(client, pair["refresh_token"])).json()
    other = (await login(client)).json()
    client.cookies.clear()
    out = await logout_with(client, pair["refresh_token"], False)
    assert out.status_code == 204, out.text
    assert not await signed_in(client, child)
    assert await signed_in(client, other)


async def test_a_parent_whose_child_was_used_signs_nobody_out(client: Client) -> None:
    await register(client)
    pair = (await login(client)).json()
    child = (await refresh(client, pair["refresh_token"])).json()
    grandchild = (await refresh(client, child["refresh_token"])).json()
    client.cookies.clear()
    out = await logout_with(client, pair["refresh_token"], True)
    assert_problem(out, 401, "invalid_refresh_token")
    assert await signed_in(client, grandchild)


async def test_cookie_authentication_and_csrf(client: Client) -> None:
    await register(client)
    assert (
        await client.get("/api/v1/users/me")
    ).status_code == 200  # safe method: no header needed
    assert_problem(await client.post("/api/v1/auth/logout"), 403, "csrf_failed")
    wrong = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "guess"})
    assert_problem(wrong, 403, "csrf_failed")
    ok = await client.post(
        "/api/v1/auth/logout", headers={"X-CSRF-Token": client.cookies["orbsurv_csrf"]}
    )
    assert ok.status_code == 204


async def test_sessions_list_and_revoke(client: Client) -> None:
    first = await register(client)
    second = (await login(client)).json()
    other = await register(client, "eve@example.com")
    client.cookies.clear()
    listed = (
        await client.get("/api/v1/auth/sessions", headers=bearer(second["access_token"]))
    ).json()
    assert listed["total"] == 2
    assert [s["current"] for s in listed["items"]] == [True, False]
    assert listed["items"][0]["user_agent"]
    first_id = listed["items"][1]["id"]
    gone = await client.delete(
        f"/api/v1/auth/sessions/{first_id}", headers=bearer(second["access_token"])
    )
    assert gone.status_code == 204
    assert_problem(
        await client.get("/api/v1/users/me", headers=bearer(first["access_token"])),
        401,
        "token_revoked",
    )
    theirs = (
        await client.get("/api/v1/auth/sessions", headers=bearer(other["access_token"]))
    ).json()["items"][0]["id"]
    for target in (theirs, first_id, "no-such-session"):
        response = await client.delete(
            f"/api/v1/auth/sessions/{target}", headers=bearer(second["access_token"])
        )
        assert_problem(response, 404, "session_not_found")


# --- profile ------------------------------------------------------------------------------


async def test_profile_routes(client: Client) -> None:
    pair = await register(client)
    client.cookies.clear()
    for path in ("/api/v1/users/me", "/api/v1/auth/me"):
        body = (await client.get(path, headers=bearer(pair["access_token"]))).json()
        assert set(body) == {
            "id",
            "email",
            "username",
            "name",
            "organization",
            "role",
            "email_verified",
            "otp_enabled",
            "created_at",
            "updated_at",
        }
    assert_problem(await client.get("/api/v1/users/me"), 401, "unauthenticated")
    basic = await client.get("/api/v1/users/me", headers={"Authorization": "Basic YTpi"})
    assert_problem(basic, 401, "invalid_token")
    for junk in ("Bearer", "Bearer not.a.token", "Bearer " + "x" * 5000):
        assert (
            await client.get("/api/v1/users/me", headers={"Authorization": junk})
        ).status_code == 401


# --- OTP management -----------------------------------------------------------------------


async def test_otp_lifecycle(client: Client, settings: Settings) -> None:
    token = (await register(client))["access_token"]
    client.cookies.clear()
    auth = bearer(token)
    assert_problem(
        await client.post("/api/v1/auth/otp/setup", json={"password": "wrong horse"}, headers=auth),
        400,
        "wrong_password",
    )
    assert_problem(
        await client.post("/api/v1/auth/otp/confirm", json={"otp": "123456"}, headers=auth),
        400,
        "otp_not_set_up",
    )
    setup = (
        await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth)
    ).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    assert_problem(
        await client.post(
            "/api/v1/auth/otp/confirm",
            json={"otp": "000000" if totp.now() != "000000" else "111111"},
            headers=auth,
        ),
        400,
        "invalid_otp",
    )
    code = totp.now()
    assert (
        await client.post("/api/v1/auth/otp/confirm", json={"otp": code}, headers=auth)
    ).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=auth)).json()["otp_enabled"] is True
    assert_problem(
        await client.post("/api/v1/auth/otp/setup", json={"password": PASSWORD}, headers=auth),
        409,
        "otp_already_enabled",
    )
    reused = await client.request(
        "DELETE", "/api/v1/auth/otp", json={"password": PASSWORD, "otp": code}, headers=auth
    )
    assert_problem(reused, 400, "invalid_otp")  # single use
    off = await client.request(
        "DELETE",
        "/api/v1/auth/otp",
        json={"password": PASSWORD, "otp": totp.at(datetime.now(UTC).timestamp() + 30)},
        headers=auth,
    )
    assert off.json() == {"otp_enabled": False}
    actions = {row.action for row in await fetch(settings, "SELECT action FROM audit_events")}
    assert {
        "otp.setup_started",
        "otp.enabled",
        "otp.disabled",
        "user.registered",
        "login.succeeded",
    } <= actions or {
        "otp.setup_started",
        "otp.enabled",
        "otp.disabled",
        "user.registered",
    } <= actions


# --- superuser seeding --------------------------------------------------------------------


async def test_superuser_is_seeded_create_only(make_settings: SettingsFactory) -> None:
    seeded = make_settings(SUPERUSER_EMAIL="root@example.com", SUPERUSER_PASSWORD=PASSWORD)
    async with AsyncTestClient(make_app(seeded)) as client:
        dev = await login(client, "root@example.com")
    assert dev.json()["role"] == "dev"

    plain = make_settings()
    app = make_app(plain)
    async with AsyncTestClient(app) as client:
        await register(client, "boss@example.com")
    again = make_settings(
        SUPERUSER_EMAIL="boss@example.com", SUPERUSER_PASSWORD="another horse battery"
    )
    async with AsyncTestClient(make_app(again)) as client:
        existing = await login(client, "boss@example.com")
    assert existing.json()["role"] == "user"  # never promoted, password untouched


async def test_a_seeded_superuser_signs_in_with_any_spelling_of_the_address(
    make_settings: SettingsFactory,
) -> None:
    seeded = make_settings(SUPERUSER_EMAIL="Root@XN--BCHER-KVA.DE", SUPERUSER_PASSWORD=PASSWORD)
    async with AsyncTestClient(make_app(seeded)) as client:
        for spelling in ("root@bücher.de", "Root@XN--BCHER-KVA.DE"):
            answer = await login(client, spelling)
            assert answer.status_code == 200, answer.text
            assert answer.json()["role"] == "dev"


# --- Redis: mirror, and what happens when it is gone --------------------------------------


@pytest.mark.redis
async def test_revocation_through_redis(make_settings: SettingsFactory, redis_url: str) -> None:
    app = make_app(make_settings(REDIS_URL=redis_url))
    async with AsyncTestClient(app) as client:
        pair = await register(client, f"redis-{datetime.now(UTC).timestamp()}@example.com")
        client.cookies.clear()
        assert (
            await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        ).status_code == 200
        await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
        after = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert_problem(after, 401, "token_revoked")


async def test_without_redis_nothing_is_let_through(make_settings: SettingsFactory) -> None:
    from tests.services import free_port

    app = make_app(make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    async with AsyncTestClient(app) as client:
        pair = await register(client)
        client.cookies.clear()
        me = await client.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 200  # the sessions table answers
        other = (await login(client)).json()
        await client.post("/api/v1/auth/logout", headers=bearer(other["access_token"]))
        revoked = await client.get("/api/v1/users/me", headers=bearer(other["access_token"]))
        assert_problem(revoked, 401, "token_revoked")
        for _ in range(5):
            await login(client, password="wrong horse battery")
        assert_problem(await login(client), 429, "too_many_attempts")  # limits still hold
        ready = await client.get("/api/v1/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["cache"] == "unavailable"
