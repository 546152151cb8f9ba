"""Who reaches the console: every console route, read or write, refuses a dev session opened
without the second factor (403 ``dev_session_required``); an admin keeps its read access; an
operator never changes their own role or active state."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http import console as console_routes
from orbsurv.adapters.http.auth import permission_checks
from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login, register
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory

PREFIX = "/api/v1"
BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/admin/send-email": {"to": "x@example.com", "subject": "Hi", "body": "Hello"},
    "/api/v1/admin/orders/some-id": {"status": "cancelled"},
}
DEV_ONLY_READS = {"/api/v1/admin/ping"}  # a check of the dev session itself
CONSOLE_HANDLERS = {handler.handler_name for handler in console_routes.ROUTES}


@pytest.fixture
def console_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(ENV="development", INPROCESS_WORKER="false")  # the master OTP works


@pytest.fixture
async def console(
    console_settings: Settings,
) -> AsyncIterator[tuple[Litestar, Client, dict[str, str], dict[str, str]]]:
    async with signed_in(console_settings) as opened:
        yield opened


@asynccontextmanager
async def signed_in(
    settings: Settings,
) -> AsyncIterator[tuple[Litestar, Client, dict[str, str], dict[str, str]]]:
    """The app, a client, a token per caller (dev, other_dev, dev_plain, admin, user) and the
    accounts' ids."""
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ids = {
            "dev": await create_account(app, "dev@example.com", Role.DEV),
            "other_dev": await create_account(app, "other@example.com", Role.DEV),
            "admin": await create_account(app, "admin@example.com", Role.ADMIN),
        }
        tokens = {
            "dev": (await login(client, "dev@example.com", scope="dev", otp="000000")).json()[
                "access_token"
            ],
            "other_dev": (
                await login(client, "other@example.com", scope="dev", otp="000000")
            ).json()["access_token"],
            "dev_plain": (await login(client, "dev@example.com")).json()["access_token"],
            "admin": (await login(client, "admin@example.com")).json()["access_token"],
            "user": (await register(client, "user@example.com"))["access_token"],
        }
        client.cookies.clear()
        yield app, client, tokens, ids


def console_operations(app: Litestar, user_id: str) -> list[tuple[str, str]]:
    """Every (method, path) of the console, read from the app: the routes under /admin and the
    console's aliases elsewhere, so a route added later is covered without editing this test."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            name = handler.handler_name
            if not (route.path.startswith(f"{PREFIX}/admin") or name in CONSOLE_HANDLERS):
                continue
            path = re.sub(r"\{user_id:str\}", user_id, route.path)
            path = re.sub(r"\{kind:str\}", "waitlist", path)
            path = re.sub(r"\{[a-z_]+:str\}", "some-id", path)
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                found.append((method, path))
    return sorted(set(found))


async def test_a_dev_without_the_second_factor_gets_nothing_from_the_console(
    console: tuple[Litestar, Client, dict[str, str], dict[str, str]],
) -> None:
    app, client, tokens, ids = console
    operations = console_operations(app, ids["admin"])
    assert len(operations) >= 15
    assert ("GET", f"{PREFIX}/admin/users") in operations
    assert ("GET", f"{PREFIX}/users") in operations  # the alias of the user list
    for method, path in operations:
        body = BODIES.get(path, {"quota_bytes": None} if path.endswith("/storage-quota") else {})
        answer = await client.request(method, path, json=body, headers=bearer(tokens["dev_plain"]))
        assert_problem(answer, 403, "dev_session_required")
        assert answer.status_code == 403, (method, path)


async def test_an_admin_reads_and_a_dev_session_operates(
    console: tuple[Litestar, Client, dict[str, str], dict[str, str]],
) -> None:
    app, client, tokens, ids = console
    for method, path in console_operations(app, ids["admin"]):
        if method != "GET":
            continue
        for who in ("admin", "dev"):
            answer = await client.get(path, headers=bearer(tokens[who]))
            if who == "admin" and path in DEV_ONLY_READS:
                assert_problem(answer, 403, "forbidden")
                continue
            assert answer.status_code in (200, 404), (who, path, answer.text)
            if answer.status_code == 404:
                assert path.endswith("some-id"), (who, path)
        assert_problem(await client.get(path, headers=bearer(tokens["user"])), 403, "forbidden")


async def test_an_operator_cannot_change_their_own_role_or_state(
    console: tuple[Litestar, Client, dict[str, str], dict[str, str]],
    console_settings: Settings,
) -> None:
    _, client, tokens, ids = console
    own = f"{PREFIX}/admin/users/{ids['dev']}"
    for change in ({"role": "admin"}, {"is_active": False}, {"role": "dev", "is_active": True}):
        answer = await client.patch(own, json=change, headers=bearer(tokens["dev"]))
        assert_problem(answer, 409, "cannot_modify_self")
    [row] = await fetch(
        console_settings, "SELECT role, is_active FROM users WHERE id = :id", id=ids["dev"]
    )
    assert (row.role, bool(row.is_active)) == ("dev", True)
    assert (
        await client.get(f"{PREFIX}/admin/summary", headers=bearer(tokens["dev"]))
    ).status_code == 200
    # Another dev does it.
    other = await client.patch(own, json={"role": "admin"}, headers=bearer(tokens["other_dev"]))
    assert other.status_code == 200, other.text
    assert other.json()["role"] == "admin"


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_JSON = b"{bad"
TOO_DEEP = b"[" * 40 + b"]" * 40  # deeper than the screen's MAX_JSON_DEPTH (32)


def gated_writes(app: Litestar, user_id: str) -> list[tuple[str, str]]:
    """Every (method, path) of a write route that ``requires`` a permission, read from the app's
    route table, so a gated route added later is covered without editing this test."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not permission_checks(handler):
                continue
            path = re.sub(r"\{user_id:str\}", user_id, route.path)
            path = re.sub(r"\{kind:str\}", "waitlist", path)
            path = re.sub(r"\{[a-z_]+:int\}", "1", path)
            path = re.sub(r"\{[a-z_]+:[a-z]+\}", "some-id", path)
            found.extend((method, path) for method in handler.http_methods & WRITES)
    return sorted(set(found))


@pytest.fixture
def audited_settings(make_settings: SettingsFactory) -> Settings:
    """Every refusal its own ``access.denied`` row (no flood summary within the test)."""
    return make_settings(ENV="development", INPROCESS_WORKER="false", DENIAL_AUDIT_LIMIT="10000")


async def test_a_refused_write_is_403_and_audited_whatever_its_body(
    audited_settings: Settings,
) -> None:
    """The permission gate settles the caller before the body is read or screened: on every
    gated write route a caller the route refuses gets the same 403 for a body that is not JSON
    or nests too deeply as for a well-formed one, each refusal audited as ``access.denied``;
    without credentials, 401 whatever the body."""
    async with signed_in(audited_settings) as (app, client, tokens, ids):
        await refused_whatever_the_body(audited_settings, app, client, tokens, ids)


async def refused_whatever_the_body(
    settings: Settings,
    app: Litestar,
    client: Client,
    tokens: dict[str, str],
    ids: dict[str, str],
) -> None:
    operations = gated_writes(app, ids["admin"])
    assert ("PUT", f"{PREFIX}/admin/users/{ids['admin']}/storage-quota") in operations
    assert ("POST", f"{PREFIX}/admin/send-email") in operations
    assert ("POST", f"{PREFIX}/resources") in operations
    assert len(operations) >= 10

    async def denials() -> int:
        return len(
            await fetch(settings, "SELECT id FROM audit_events WHERE action = 'access.denied'")
        )

    def send(method: str, path: str, body: bytes, who: str | None) -> Any:
        headers = {"content-type": "application/json"}
        if who is not None:
            headers |= bearer(tokens[who])
        return client.request(method, path, content=body, headers=headers)

    for method, path in operations:
        # An admin is refused the ADMINISTER routes; a user is refused every gated route.
        who = "admin"
        well_formed = await send(method, path, b"{}", who)
        if well_formed.status_code != 403:
            who = "user"
            well_formed = await send(method, path, b"{}", who)
        assert well_formed.status_code == 403, (method, path, well_formed.text)
        code = well_formed.json()["code"]
        for body in (NOT_JSON, TOO_DEEP):
            before = await denials()
            answer = await send(method, path, body, who)
            assert answer.status_code == 403, (method, path, who, body, answer.text)
            assert_problem(answer, 403, code)
            assert await denials() == before + 1, (method, path, who, body)
            plain = await send(method, path, body, "dev_plain")
            assert_problem(plain, 403, "dev_session_required")
            anonymous = await send(method, path, body, None)
            assert anonymous.status_code == 401, (method, path, body, anonymous.text)
