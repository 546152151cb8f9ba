"""One guessing budget per account: sign-in by email or username and the current-password
checks of the portal all spend it, and all answer 429 ``too_many_attempts`` once it is spent.
One-time codes have a budget of their own that only a right code gives back."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from litestar import Litestar

from orbsurv.domain.identity import Role
from tests.api.identity_helpers import (
    PASSWORD,
    Client,
    bearer,
    create_account,
    disable,
    enrol,
    login,
    next_code,
    wrong_code,
)
from tests.api.test_conventions import assert_problem

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
