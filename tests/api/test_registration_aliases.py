"""Every route that registers applies the same rules: with AUTH_REQUIRE_VERIFIED_EMAIL=true,
``POST /auth/register`` and its resource-style twin ``POST /users`` both answer 202 with one body,
whether or not the address is taken, and neither signs in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, Client, fetch
from tests.conftest import SettingsFactory

ROUTES = ["/api/v1/auth/register", "/api/v1/users"]


@pytest.fixture
def verified_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(AUTH_REQUIRE_VERIFIED_EMAIL="true")


@pytest.fixture
async def vclient(verified_settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(make_app(verified_settings)) as client:
        yield client


@pytest.mark.parametrize("first", ROUTES)
async def test_no_registration_route_reveals_a_taken_address(
    vclient: Client, verified_settings: Settings, first: str
) -> None:
    new = await vclient.post(first, json={"email": "ada@example.com", "password": PASSWORD})
    answers = [new] + [
        await vclient.post(path, json={"email": "Ada@Example.com", "password": PASSWORD})
        for path in ROUTES
    ]
    for answer in answers:
        assert answer.status_code == 202, answer.text
        assert answer.json() == new.json()
        assert "set-cookie" not in answer.headers
    assert new.json()["status"] == "accepted"
    assert "access_token" not in new.text
    rows = await fetch(verified_settings, "SELECT email FROM users")
    assert [row.email for row in rows] == ["ada@example.com"]


async def test_the_twin_still_validates_alike(vclient: Client) -> None:
    for path in ROUTES:
        weak = await vclient.post(path, json={"email": "bob@example.com", "password": "password"})
        assert weak.status_code == 422, (path, weak.text)
        assert weak.json()["code"] == "validation_error"
