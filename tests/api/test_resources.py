"""The knowledge base over HTTP: public reads, admin writes, slugs, links, drafts, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login, register
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory

RESOURCES = "/api/v1/resources"


@pytest.fixture
def content_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(INPROCESS_WORKER="false")


@pytest.fixture
async def editors(content_settings: Settings) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    from litestar.testing import AsyncTestClient

    app: Litestar = make_app(content_settings)
    async with AsyncTestClient(app) as client:
        await create_account(app, "admin@example.com", Role.ADMIN)
        user = await register(client, "user@example.com")
        admin = (await login(client, "admin@example.com")).json()["access_token"]
        client.cookies.clear()
        yield client, {"admin": admin, "user": user["access_token"]}


def resource(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Getting Started",
        "type": "knowledge",
        "description": "First steps.",
        "body": "# Hello\n\n<script>alert(1)</script> is kept raw.",
        "published": True,
        **fields,
    }


async def test_create_read_update_delete(
    editors: tuple[Client, dict[str, str]], content_settings: Settings
) -> None:
    client, tokens = editors
    admin = bearer(tokens["admin"])
    created = await client.post(
        RESOURCES, json=resource(url="https://docs.example.com/a"), headers=admin
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["slug"] == "getting-started"  # made from the title
    assert created.headers["location"] == f"{RESOURCES}/getting-started"
    assert body["body"] == resource()["body"]  # raw markdown, as stored

    read = await client.get(f"{RESOURCES}/GETTING-Started")  # anyone, any case
    assert read.status_code == 200
    assert read.json()["id"] == body["id"]

    changed = await client.patch(
        f"{RESOURCES}/getting-started", json={"title": "Start here", "url": None}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Start here"
    assert changed.json()["url"] is None
    put = await client.put(
        f"{RESOURCES}/getting-started", json={"slug": "Start-Here"}, headers=admin
    )
    assert put.json()["slug"] == "start-here"
    assert (await client.get(f"{RESOURCES}/getting-started")).status_code == 404

    assert (await client.delete(f"{RESOURCES}/START-here", headers=admin)).status_code == 204
    assert_problem(await client.get(f"{RESOURCES}/start-here"), 404, "resource_not_found")
    actions = [
        row.action
        for row in await fetch(
            content_settings,
            "SELECT action FROM audit_events WHERE target_type = 'resource' ORDER BY occurred_at",
        )
    ]
    assert actions == [
        "resource.created",
        "resource.updated",
        "resource.updated",
        "resource.deleted",
    ]


async def test_a_case_variant_of_a_slug_is_a_conflict(
    editors: tuple[Client, dict[str, str]],
) -> None:
    client, tokens = editors
    admin = bearer(tokens["admin"])
    assert (
        await client.post(RESOURCES, json=resource(slug="faq"), headers=admin)
    ).status_code == 201
    assert_problem(
        await client.post(RESOURCES, json=resource(slug="FAQ"), headers=admin), 409, "slug_taken"
    )
    other = await client.post(RESOURCES, json=resource(slug="other"), headers=admin)
    assert_problem(
        await client.patch(f"{RESOURCES}/other", json={"slug": "Faq"}, headers=admin),
        409,
        "slug_taken",
    )
    assert other.status_code == 201
    # A generated slug takes a free suffix instead.
    first = await client.post(RESOURCES, json=resource(), headers=admin)
    second = await client.post(RESOURCES, json=resource(), headers=admin)
    assert [first.json()["slug"], second.json()["slug"]] == ["getting-started", "getting-started-2"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "data:text/html,hi"}, "url"),
        ({"url": "//evil.example.com"}, "url"),
        ({"slug": "no spaces!"}, "slug"),
        ({"type": "blog"}, "type"),
        ({"title": ""}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"body": "nul \x00 here"}, "body"),
        ({"description": "x" * 2001}, "description"),
    ],
)
async def test_bad_fields_are_422_and_change_nothing(
    editors: tuple[Client, dict[str, str]], fields: dict[str, Any], field: str
) -> None:
    client, tokens = editors
    response = await client.post(
        RESOURCES, json=resource(**fields), headers=bearer(tokens["admin"])
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == field
    assert (await client.get(RESOURCES)).json()["total"] == 0


async def test_an_unknown_field_in_an_update_is_422(
    editors: tuple[Client, dict[str, str]],
) -> None:
    client, tokens = editors
    admin = bearer(tokens["admin"])
    await client.post(RESOURCES, json=resource(), headers=admin)
    response = await client.patch(
        f"{RESOURCES}/getting-started", json={"titel": "typo"}, headers=admin
    )
    assert_problem(response, 422, "validation_error")


async def test_only_admins_write(editors: tuple[Client, dict[str, str]]) -> None:
    client, tokens = editors
    assert_problem(await client.post(RESOURCES, json=resource()), 401, "unauthenticated")
    assert_problem(
        await client.post(RESOURCES, json=resource(), headers=bearer(tokens["user"])),
        403,
        "forbidden",
    )
    assert_problem(
        await client.delete(f"{RESOURCES}/x", headers=bearer(tokens["user"])), 403, "forbidden"
    )


async def test_drafts_are_for_admins_only(editors: tuple[Client, dict[str, str]]) -> None:
    client, tokens = editors
    admin = bearer(tokens["admin"])
    await client.post(RESOURCES, json=resource(title="Draft", published=False), headers=admin)
    await client.post(RESOURCES, json=resource(title="Live"), headers=admin)
    for who in (None, tokens["user"], "not-a-token"):
        headers = bearer(who) if who else {}
        listed = (await client.get(RESOURCES, headers=headers)).json()
        assert [item["slug"] for item in listed["items"]] == ["live"]
        assert (await client.get(f"{RESOURCES}/draft", headers=headers)).status_code == 404
    listed = (await client.get(RESOURCES, headers=admin)).json()
    assert {item["slug"] for item in listed["items"]} == {"live", "draft"}
    assert (await client.get(f"{RESOURCES}/draft", headers=admin)).status_code == 200


async def test_filters_and_pages(editors: tuple[Client, dict[str, str]]) -> None:
    client, tokens = editors
    admin = bearer(tokens["admin"])
    await client.post(
        RESOURCES,
        json=resource(title="Upload limits", type="api", body="5 GiB per file"),
        headers=admin,
    )
    await client.post(
        RESOURCES,
        json=resource(title="Billing", type="support", body="Invoices monthly"),
        headers=admin,
    )
    await client.post(
        RESOURCES, json=resource(title="100% off", type="updates", body="sale"), headers=admin
    )
    by_type = (await client.get(RESOURCES, params={"type": "api"})).json()
    assert [i["slug"] for i in by_type["items"]] == ["upload-limits"]
    by_text = (await client.get(RESOURCES, params={"q": "INVOICES monthly"})).json()
    assert [i["slug"] for i in by_text["items"]] == ["billing"]
    percent = (await client.get(RESOURCES, params={"q": "100%"})).json()
    assert [i["slug"] for i in percent["items"]] == ["100-off"]  # LIKE wildcards are escaped
    paged = (await client.get(RESOURCES, params={"page_size": 2, "page": 2})).json()
    assert (paged["total"], paged["pages"], len(paged["items"])) == (3, 2, 1)
    assert_problem(await client.get(RESOURCES, params={"type": "blog"}), 422, "validation_error")
