"""Software packages under abuse: every change leaves an audit row in the transaction that makes
it, deleting someone else's package is a console write, publishing is rate limited per user, a
package holds a bounded number of versions (also under concurrent publications, on PostgreSQL),
and the version list is paged."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login
from tests.api.test_conventions import assert_problem
from tests.api.test_packages_catalog import publish, sign_up
from tests.conftest import SettingsFactory, truncate_all

BASE = "/api/v1/software-packages"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


async def account(
    app: Litestar, client: Client, email: str, role: Role = Role.USER, **login_extra: Any
) -> dict[str, str]:
    await create_account(app, email, role)
    response = await login(client, email, **login_extra)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return bearer(response.json()["access_token"])


def details(row: Any) -> dict[str, Any]:
    value = row.details
    parsed: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return parsed


async def events(settings: Settings, prefix: str = "package.") -> list[Any]:
    return await fetch(
        settings,
        "SELECT action, actor_user_id, target_id, ip, request_id, details FROM audit_events "
        "WHERE action LIKE :prefix ORDER BY occurred_at, action",
        prefix=f"{prefix}%",
    )


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.fixture
def dev_settings(make_settings: SettingsFactory) -> Settings:
    # ENV=development: the master one-time code opens a dev session.
    return make_settings(ENV="development", INPROCESS_WORKER="false")


@pytest.fixture
async def dev_client(dev_settings: Settings) -> AsyncIterator[tuple[Litestar, Client]]:
    app = make_app(dev_settings)
    async with AsyncTestClient(app) as client:
        yield app, client


async def test_every_package_change_is_audited(
    dev_client: tuple[Litestar, Client], dev_settings: Settings
) -> None:
    """Publishing (single request, init + complete, tus), editing, making public and deleting a
    package recorded nothing in the audit trail. Now each writes its event with the request's
    address and id, in the transaction of the change."""
    app, client, settings = *dev_client, dev_settings
    ada_id = await create_account(app, "ada@example.com", Role.USER)
    ada = bearer((await login(client, "ada@example.com")).json()["access_token"])
    client.cookies.clear()
    traced = {**ada, "X-Request-ID": "req-publish-1"}
    single = await client.post(
        BASE,
        data={"name": "orbit", "version": "1.0.0"},
        files={"file": ("o.tgz", b"one", "application/gzip")},
        headers=traced,
    )
    assert single.status_code == 201, single.text
    package_id = single.json()["package_id"]
    resumable = await publish(client, ada, b"two", version="1.1.0")
    assert resumable["package_id"] == package_id
    created = await client.post(
        f"{BASE}/uploads",
        headers={
            **ada,
            **TUS,
            "Upload-Length": "5",
            "Upload-Metadata": metadata(package_name="orbit", version="1.2.0", filename="o"),
        },
    )
    assert created.status_code == 201, created.text
    sent = await client.patch(
        created.headers["location"],
        content=b"three",
        headers={**ada, **TUS, **OCTETS, "Upload-Offset": "0"},
    )
    assert sent.status_code == 204, sent.text
    edited = await client.patch(
        f"{BASE}/{package_id}", json={"is_public": True, "description": "d"}, headers=ada
    )
    assert edited.status_code == 200, edited.text
    unchanged = await client.patch(f"{BASE}/{package_id}", json={}, headers=ada)
    assert unchanged.status_code == 200
    gone = await client.delete(f"{BASE}/{package_id}", headers=ada)
    assert gone.status_code == 204

    rows = await events(settings)
    assert [row.action for row in rows] == [
        "package.created",
        "package.version_published",
        "package.version_published",
        "package.version_published",
        "package.updated",
        "package.deleted",
    ]
    assert {row.actor_user_id for row in rows} == {ada_id}
    assert {row.target_id for row in rows} == {package_id}
    assert all(row.ip for row in rows)
    assert rows[0].request_id == rows[1].request_id == "req-publish-1"
    published = [details(row) for row in rows[1:4]]
    assert [p["version"] for p in published] == ["1.0.0", "1.1.0", "1.2.0"]
    assert [p["protocol"] for p in published] == ["single", "orbsurv", "tus"]
    assert {p["by"] for p in published} == {"request"}
    update = details(rows[4])
    assert (update["fields"], update["from_is_public"], update["is_public"]) == (
        "description,is_public",
        False,
        True,
    )
    deleted = details(rows[5])
    assert (deleted["owner_id"], deleted["versions"], deleted["by_owner"]) == (ada_id, 3, True)


async def test_deleting_another_users_package_is_a_console_write(
    dev_client: tuple[Litestar, Client], dev_settings: Settings
) -> None:
    """An admin without a dev session deleted another user's private package (204) and nothing
    was recorded. Now another user's package needs a dev session: the admin and a dev signed in
    without the code are refused (403, audited as access.denied, nothing deleted); a dev session
    deletes it (audited); an admin still deletes their own."""
    app, client, settings = *dev_client, dev_settings
    ada = await account(app, client, "ada@example.com")
    admin = await account(app, client, "admin@example.com", Role.ADMIN)
    dev_plain = await account(app, client, "dev@example.com", Role.DEV)
    dev = bearer(
        (await login(client, "dev@example.com", scope="dev", otp="000000")).json()["access_token"]
    )
    client.cookies.clear()
    private = (await publish(client, ada, b"p", name="private"))["package_id"]
    public = (await publish(client, ada, b"q", name="public", is_public=True))["package_id"]

    assert_problem(await client.delete(f"{BASE}/{private}", headers=admin), 403, "forbidden")
    assert_problem(
        await client.delete(f"{BASE}/{public}", headers=dev_plain), 403, "dev_session_required"
    )
    # A dev without the code is a plain user: another user's private package does not exist.
    assert_problem(
        await client.delete(f"{BASE}/{private}", headers=dev_plain), 404, "package_not_found"
    )
    denied = await fetch(
        settings, "SELECT target_id FROM audit_events WHERE action = 'access.denied'"
    )
    assert sorted(row.target_id for row in denied) == sorted(
        [f"{BASE}/{private}", f"{BASE}/{public}"]
    )
    assert len(await fetch(settings, "SELECT id FROM packages")) == 2
    assert await events(settings, "package.deleted") == []

    assert (await client.delete(f"{BASE}/{private}", headers=dev)).status_code == 204
    [row] = await events(settings, "package.deleted")
    assert details(row)["by_owner"] is False
    assert details(row)["name"] == "private"

    own = (await publish(client, admin, b"mine", name="admins-own"))["package_id"]
    assert (await client.delete(f"{BASE}/{own}", headers=admin)).status_code == 204
    assert (await client.delete(f"{BASE}/{public}", headers=ada)).status_code == 204
    assert await fetch(settings, "SELECT id FROM packages") == []


async def test_another_users_project_needs_a_dev_session_too(
    dev_client: tuple[Litestar, Client], dev_settings: Settings
) -> None:
    app, client, settings = *dev_client, dev_settings
    ada = await account(app, client, "ada@example.com")
    admin = await account(app, client, "admin@example.com", Role.ADMIN)
    dev_plain = await account(app, client, "dev@example.com", Role.DEV)
    dev = bearer(
        (await login(client, "dev@example.com", scope="dev", otp="000000")).json()["access_token"]
    )
    client.cookies.clear()

    async def project(auth: dict[str, str], public: bool) -> str:
        answer = await client.post(
            "/api/v1/projects",
            data={"name": "Map", "is_public": str(public).lower()},
            files={"file": ("m.zip", b"zip bytes", "application/zip")},
            headers=auth,
        )
        assert answer.status_code == 201, answer.text
        project_id: str = answer.json()["id"]
        return project_id

    private, public = await project(ada, False), await project(ada, True)
    url = "/api/v1/projects/{}".format
    assert_problem(await client.delete(url(private), headers=admin), 403, "forbidden")
    assert_problem(await client.delete(url(public), headers=dev_plain), 403, "dev_session_required")
    assert len(await fetch(settings, "SELECT id FROM projects")) == 2
    denied = await fetch(
        settings, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'"
    )
    assert denied[0][0] == 2
    assert (await client.delete(url(private), headers=dev)).status_code == 204
    assert (await client.delete(url(await project(admin, False)), headers=admin)).status_code == 204
    assert len(await events(settings, "project.deleted")) == 2


async def test_publishing_is_rate_limited_per_user(make_settings: SettingsFactory) -> None:
    """1,500 versions of one package in 39 s: nothing limited publishing. Now opening uploads
    and single-request publications count against PACKAGE_PUBLISHES_PER_HOUR per user id, not
    per anything the client sends."""
    settings = make_settings(PACKAGE_PUBLISHES_PER_HOUR="3", TRUSTED_PROXIES="127.0.0.1/32")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await account(app, client, "ada@example.com")
        eve = await account(app, client, "eve@example.com")
        await publish(client, ada, b"1", version="1.0.0")
        await publish(client, ada, b"2", version="1.0.1")
        single = await client.post(
            BASE,
            data={"name": "orbit", "version": "1.0.2"},
            files={"file": ("o.tgz", b"3", "application/gzip")},
            headers=ada,
        )
        assert single.status_code == 201, single.text
        init = {"package_name": "orbit", "version": "1.0.3", "file_name": "o", "size": 1}
        for n, spoof in enumerate(("", "203.0.113.7", "198.51.100.9")):
            headers = {**ada, "X-Forwarded-For": spoof} if spoof else ada
            refused = await client.post(
                f"{BASE}/uploads/init", json={**init, "version": f"2.0.{n}"}, headers=headers
            )
            body = assert_problem(refused, 429, "rate_limited")
            assert int(refused.headers["retry-after"]) > 0, body
        tus = await client.post(
            f"{BASE}/uploads",
            headers={
                **ada,
                **TUS,
                "Upload-Length": "1",
                "Upload-Metadata": metadata(package_name="orbit", version="3.0.0", filename="o"),
            },
        )
        assert tus.status_code == 429
        refused_single = await client.post(
            BASE,
            data={"name": "orbit", "version": "4.0.0"},
            files={"file": ("o.tgz", b"4", "application/gzip")},
            headers=ada,
        )
        assert_problem(refused_single, 429, "rate_limited")
        assert (await publish(client, eve, b"e", name="eves")).get("version_id")
    assert len(await fetch(settings, "SELECT id FROM package_versions")) == 4
    assert await fetch(settings, "SELECT id FROM upload_sessions WHERE state <> 'completed'") == []


async def test_a_package_holds_at_most_package_max_versions(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(PACKAGE_MAX_VERSIONS="2")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await account(app, client, "ada@example.com")
        await publish(client, ada, b"1", version="1.0.0")
        await publish(client, ada, b"2", version="1.0.1")
        init = {"package_name": "orbit", "version": "1.0.2", "file_name": "o", "size": 1}
        full = await client.post(f"{BASE}/uploads/init", json=init, headers=ada)
        assert_problem(full, 409, "too_many_versions")
        single = await client.post(
            BASE,
            data={"name": "orbit", "version": "1.0.2"},
            files={"file": ("o.tgz", b"3", "application/gzip")},
            headers=ada,
        )
        assert_problem(single, 409, "too_many_versions")
        other = await publish(client, ada, b"x", name="another", version="1.0.0")
        assert other["version_id"]
    assert len(await fetch(settings, "SELECT id FROM package_versions")) == 3
    assert await fetch(settings, "SELECT id FROM upload_sessions WHERE state <> 'completed'") == []


async def test_concurrent_publications_cannot_pass_the_version_cap(
    make_settings: SettingsFactory, database_url: str
) -> None:
    """Six uploads opened while the package held one version (the early check passes for each)
    and completed at once: the publishing transaction counts under a lock on the package row,
    so the package ends with exactly PACKAGE_MAX_VERSIONS versions and the others are 409."""
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    settings = make_settings(DATABASE_URL=database_url, PACKAGE_MAX_VERSIONS="3")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await sign_up(client, settings, "ada@example.com")
        package_id = (await publish(client, ada, b"first", version="1.0.0"))["package_id"]
        uploads = []
        for n in range(6):
            data = f"bytes {n}".encode()
            body = {"package_name": "orbit", "version": f"2.0.{n}", "file_name": "o"}
            created = await client.post(
                f"{BASE}/uploads/init", json={**body, "size": len(data)}, headers=ada
            )
            assert created.status_code == 201, created.text
            upload_id = created.json()["upload_id"]
            sent = await client.patch(
                f"{BASE}/uploads/{upload_id}",
                content=data,
                headers={**ada, **OCTETS, "Upload-Offset": "0"},
            )
            assert sent.status_code == 200, sent.text
            uploads.append(upload_id)
        answers = await asyncio.gather(
            *(client.post(f"{BASE}/uploads/{u}/complete", headers=ada) for u in uploads)
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 200, 409, 409, 409, 409], [a.text for a in answers]
        for answer in answers:
            if answer.status_code == 409:
                assert answer.json()["code"] == "too_many_versions"
        listed = await client.get(f"{BASE}/{package_id}/versions", headers=ada)
        assert listed.json()["total"] == 3
    rows = await fetch(
        settings, "SELECT count(*) FROM package_versions WHERE package_id = :p", p=package_id
    )
    assert rows[0][0] == 3
    published = await events(settings, "package.version_published")
    assert len(published) == 3


async def test_the_version_list_is_paged_and_latest_spans_every_page(
    app: Litestar, client: Client
) -> None:
    """GET /software-packages/{id}/versions answered every version at once. Now it pages like
    every list, keeps its keys (package_id, latest, items), and latest is the highest SemVer
    of all versions, flagged on whichever page it is."""
    ada = await account(app, client, "ada@example.com")
    package_id = ""
    for version in ("1.10.0", "1.2.0", "1.9.0", "0.1.0", "1.3.0"):
        package_id = (await publish(client, ada, version.encode(), version=version))["package_id"]
    url = f"{BASE}/{package_id}/versions"
    first = (await client.get(url, params={"page_size": 2}, headers=ada)).json()
    assert set(first) >= {"package_id", "latest", "items", "total", "page", "page_size", "pages"}
    assert (first["total"], first["page"], first["page_size"], first["pages"]) == (5, 1, 2, 3)
    assert first["latest"] == "1.10.0"
    assert [v["version"] for v in first["items"]] == ["1.3.0", "0.1.0"]
    assert [v["latest"] for v in first["items"]] == [False, False]
    last = (await client.get(url, params={"page": 3, "limit": 2}, headers=ada)).json()
    assert [v["version"] for v in last["items"]] == ["1.10.0"]
    assert last["items"][0]["latest"] is True
    default = (await client.get(url, headers=ada)).json()
    assert (default["page_size"], len(default["items"])) == (20, 5)
    clamped = (await client.get(url, params={"page": 0, "page_size": 1000}, headers=ada)).json()
    assert (clamped["page"], clamped["page_size"]) == (1, 100)
    one = (await client.get(f"{BASE}/{package_id}", headers=ada)).json()
    assert one["latest_version"] == "1.10.0"


async def test_project_uploads_are_rate_limited_per_user(make_settings: SettingsFactory) -> None:
    """Projects had the same fault: any number of uploads per user (only bytes were bounded,
    by the quota). Now PROJECT_UPLOADS_PER_HOUR bounds them per user id."""
    settings = make_settings(PROJECT_UPLOADS_PER_HOUR="2")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await account(app, client, "ada@example.com")
        eve = await account(app, client, "eve@example.com")

        async def upload(auth: dict[str, str]) -> Any:
            return await client.post(
                "/api/v1/projects",
                data={"name": "Map"},
                files={"file": ("m.zip", b"zip bytes", "application/zip")},
                headers=auth,
            )

        assert [(await upload(ada)).status_code for _ in range(2)] == [201, 201]
        refused = await upload(ada)
        assert_problem(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) > 0
        assert (await upload(eve)).status_code == 201
    assert len(await fetch(settings, "SELECT id FROM projects")) == 3
    assert await fetch(settings, "SELECT * FROM object_cleanups") == []
