"""Hostile input at the edge: strings a database cannot store, and bodies nested too deep.

Every case runs on SQLite and PostgreSQL: PostgreSQL refuses NUL and asyncpg cannot encode a lone
surrogate, so the embedded default must refuse the same inputs for the two to agree.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.inputs import MAX_JSON_DEPTH
from orbsurv.adapters.persistence.database import make_engine
from orbsurv.main.app import make_app
from tests.api.identity_helpers import PASSWORD, bearer, fetch, sign_up_admin
from tests.conftest import SettingsFactory, truncate_all

Client = AsyncTestClient[Litestar]
NUL = "a\x00b"


@pytest.fixture
async def both(
    database_url: str, make_settings: SettingsFactory
) -> AsyncIterator[tuple[Client, Any]]:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(DATABASE_URL=database_url)
    async with AsyncTestClient(make_app(settings)) as client:
        yield client, settings


def _problem(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert [error["field"] for error in body["errors"]] == [field], body


async def test_the_waitlist_refuses_a_nul_in_the_name(both: tuple[Client, Any]) -> None:
    client, settings = both
    response = await client.post(
        "/api/v1/waitlist", json={"email": "n@example.com", "name": "a\u0000b"}
    )
    _problem(response, "name")
    assert await fetch(settings, "SELECT id FROM waitlist_entries") == []


async def test_login_refuses_a_nul_in_the_email(both: tuple[Client, Any]) -> None:
    client, _ = both
    response = await client.post(
        "/api/v1/auth/login", json={"email": "a\u0000@example.com", "password": "whatever-123"}
    )
    _problem(response, "email")


# (method, path, keyword arguments of the client call, the field named)
ANONYMOUS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/waitlist", {"data": {"email": "f@example.com", "name": NUL}}, "name"),
    ("POST", "/api/v1/waitlist", {"json": {"email": "w@example.com", "source": NUL}}, "source"),
    (
        "POST",
        "/api/v1/contact",
        {"json": {"name": "Ada", "email": "c@example.com", "message": f"hello {NUL} there"}},
        "message",
    ),
    (
        "POST",
        "/api/v1/investor_interest",
        {"json": {"name": "Ada", "email": "i@example.com", "note": NUL}},
        "note",
    ),
    (
        "POST",
        "/pilot_request",
        {"data": {"name": "Ada", "org": "Org", "email": "p@example.com", "use_case": NUL * 3}},
        "use_case",
    ),
    ("POST", "/api/v1/client_errors", {"json": {"message": "boom", "stack": NUL}}, "stack"),
    (
        "POST",
        "/api/v1/analytics/events",
        {"json": {"event_type": "page_view", "action": "view", "metadata": {"k": NUL}}},
        "metadata.k",
    ),
    (
        "POST",
        "/api/v1/analytics/events",
        {"json": {"events": [{"event_type": "page_view", "action": "view", "page": NUL}]}},
        "events[0].page",
    ),
    (
        "POST",
        "/api/v1/analytics/events",
        {"json": {"event_type": "page_view", "action": "view", "metadata": {NUL: 1}}},
        "metadata.<key>",
    ),
    (
        "POST",
        "/api/v1/auth/register",
        {"json": {"email": "r@example.com", "password": PASSWORD, "name": NUL}},
        "name",
    ),
    (
        "POST",
        "/api/v1/users",
        {"json": {"email": "u@example.com", "password": PASSWORD, "organization": NUL}},
        "organization",
    ),
    ("POST", "/api/v1/auth/login", {"data": {"username": NUL, "password": PASSWORD}}, "username"),
    (
        "POST",
        "/api/v1/auth/login",
        {"json": {"email": "x@example.com", "password": NUL}},
        "password",
    ),
    ("POST", "/api/v1/auth/refresh", {"json": {"refresh_token": NUL}}, "refresh_token"),
    ("POST", "/api/v1/auth/logout", {"json": {"refresh_token": NUL}}, "refresh_token"),
    ("POST", "/api/v1/auth/password-reset/requests", {"json": {"email": NUL}}, "email"),
    ("POST", "/api/v1/auth/forgot", {"data": {"email": NUL}}, "email"),
    (
        "POST",
        "/api/v1/auth/password-reset/confirm",
        {"json": {"token": NUL, "new_password": PASSWORD}},
        "token",
    ),
    ("POST", "/api/v1/auth/verify/resend", {"json": {"email": NUL}}, "email"),
    ("GET", "/api/v1/auth/verify", {"params": {"token": NUL}}, "token"),
    ("GET", "/api/v1/auth/verify-page", {"params": {"token": NUL}}, "token"),
    (
        "POST",
        "/api/v1/waitlist",
        {"json": {"email": "h@example.com"}, "headers": {"User-Agent": NUL}},
        "User-Agent",
    ),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "field"), ANONYMOUS)
async def test_every_route_refuses_strings_a_database_cannot_store(
    both: tuple[Client, Any], method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    client, _ = both
    _problem(await client.request(method, path, **kwargs), field)


SIGNED_IN: list[tuple[str, str, dict[str, Any], str]] = [
    ("PATCH", "/api/v1/account/profile", {"name": NUL}, "name"),
    ("PUT", "/api/v1/app/account/profile", {"username": NUL}, "username"),
    ("PATCH", "/api/v1/account/organization", {"organization": NUL}, "organization"),
    ("PATCH", "/api/v1/account/organization", {"organization": "O", "timezone": NUL}, "timezone"),
    (
        "PATCH",
        "/api/v1/account/email",
        {"new_email": "z@example.com", "current_password": NUL},
        "current_password",
    ),
    (
        "PATCH",
        "/api/v1/account/password",
        {"current_password": PASSWORD, "new_password": f"{PASSWORD}{NUL}"},
        "new_password",
    ),
    ("POST", "/api/v1/auth/otp/setup", {"password": NUL}, "password"),
    ("POST", "/api/v1/auth/otp/confirm", {"otp": NUL}, "otp"),
]


# Routes that need a sign-in (and a role) answer 401 to an anonymous caller (403 to a role
# without the permission) before they look at its input; signed in as an admin, the strings are
# refused.
SIGNED_IN_PARAMETERS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/api/v1/admin/users", {"params": {"q": NUL}}, "q"),
    ("GET", "/api/v1/admin/logs", {"params": {"action": NUL}}, "action"),
    ("GET", "/api/v1/admin/waitlist", {"params": {"cursor": NUL}}, "cursor"),
    ("GET", "/api/v1/admin/users/a%00b", {}, "user_id"),
    ("DELETE", "/api/v1/auth/sessions/a%00b", {}, "session_id"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "field"), SIGNED_IN_PARAMETERS)
async def test_signed_in_routes_refuse_them_in_paths_and_queries(
    both: tuple[Client, Any], method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    client, settings = both
    anonymous = await client.request(method, path, **kwargs)
    assert anonymous.status_code == 401, anonymous.text
    headers = await sign_up_admin(client, settings)
    _problem(await client.request(method, path, headers=headers, **kwargs), field)


@pytest.mark.parametrize(("method", "path", "body", "field"), SIGNED_IN)
async def test_signed_in_routes_refuse_them_too(
    both: tuple[Client, Any], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    client, settings = both
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "me@example.com", "password": PASSWORD}
    )
    token = registered.json()["access_token"]
    response = await client.request(method, path, json=body, headers=bearer(token))
    _problem(response, field)
    rows = await fetch(settings, "SELECT name, organization, username FROM users")
    assert rows == [(None, None, None)]


async def test_a_lone_surrogate_is_named_like_a_nul(both: tuple[Client, Any]) -> None:
    client, _ = both
    response = await client.post(
        "/api/v1/waitlist",
        content=b'{"email": "s@example.com", "name": "a\\ud800b"}',
        headers={"Content-Type": "application/json"},
    )
    _problem(response, "name")
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "s@example.com", "password": "\\udfff-whatever"}',
        headers={"Content-Type": "application/json"},
    )
    _problem(response, "password")


@pytest.mark.parametrize(
    "path", ["/api/v1/waitlist", "/api/v1/auth/login", "/api/v1/auth/register", "/contact"]
)
async def test_deeply_nested_json_is_a_malformed_body_and_logs_no_error(
    client: Client, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    hostile = b'{"a": ' + b"[" * 1500 + b"]" * 1500 + b"}"  # about 3 KB
    with caplog.at_level(logging.INFO):
        response = await client.post(
            path, content=hostile, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "malformed_body"
    assert str(MAX_JSON_DEPTH) in body["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_nesting_up_to_the_limit_is_decoded(client: Client) -> None:
    depth = MAX_JSON_DEPTH - 1  # the object itself is the first level
    hostile = b'{"email": "d@example.com", "name": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(
        "/api/v1/waitlist", content=hostile, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422  # decoded, then refused by the schema: not malformed
    assert response.json()["errors"][0]["field"] == "name"


async def test_bytes_that_are_not_utf8_are_malformed(client: Client) -> None:
    response = await client.post(
        "/api/v1/waitlist",
        content=b'{"email": "\xff@example.com"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_body"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        (
            "POST",
            "/api/v1/analytics/events",
            {"json": {"event_type": "page_view", "action": "v", "occurred_at": "2020-01-01T00:00"}},
            "occurred_at",
        ),
        (
            "POST",
            "/api/v1/analytics/events",
            {"json": {"event_type": "page_view", "action": "v", "metadata": {"n": 10**30}}},
            None,
        ),
    ],
)
async def test_values_the_driver_cannot_encode_are_refused_or_stored_alike(
    both: tuple[Client, Any], method: str, path: str, kwargs: dict[str, Any], field: str | None
) -> None:
    client, _ = both
    response = await client.request(method, path, **kwargs)
    if field is None:
        assert response.status_code == 202, response.text  # stored alike on both
    else:
        _problem(response, field)


async def test_an_instant_without_an_offset_is_refused_on_both(both: tuple[Client, Any]) -> None:
    """PostgreSQL's timestamptz refuses a naive date-time (500 before); SQLite stored it."""
    client, settings = both
    await client.post(
        "/api/v1/auth/register", json={"email": "op@example.com", "password": PASSWORD}
    )
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE users SET role = 'admin'"))
    finally:
        await engine.dispose()
    signed_in = await client.post(
        "/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD}
    )
    auth = bearer(signed_in.json()["access_token"])
    client.cookies.clear()
    for name in ("since", "until"):
        naive = await client.get(
            "/api/v1/admin/logs", params={name: "2020-01-01T00:00:00"}, headers=auth
        )
        _problem(naive, name)
        aware = await client.get(
            "/api/v1/admin/logs", params={name: "2020-01-01T00:00:00Z"}, headers=auth
        )
        assert aware.status_code == 200, aware.text
