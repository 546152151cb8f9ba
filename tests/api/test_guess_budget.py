"""One guessing budget per account: sign-in by email or username and the current-password
checks of the portal all spend it, and all answer 429 ``too_many_attempts`` once it is spent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.identity_helpers import PASSWORD, Client, bearer, login
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
