"""Published packages: versions and `latest`, listing and visibility, edits, deletion with
content-addressed blobs, administration, and the sweeper."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.application.locking import Lock
from orbsurv.application.packages.uploads import SweepUploads, lock_name
from orbsurv.application.ports import ObjectStorage
from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, Client, bearer, create_account, fetch, login
from tests.conftest import S3Server, SettingsFactory, truncate_all

BASE = "/api/v1/software-packages"


async def sign_in(
    app: Litestar, client: Client, email: str, role: Role = Role.USER
) -> dict[str, str]:
    await create_account(app, email, role)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    client.cookies.clear()  # Bearer only: each call names its user
    return bearer(response.json()["access_token"])


async def sign_up(
    client: Client, settings: Settings, email: str, role: Role = Role.USER
) -> dict[str, str]:
    """Over HTTP only (the app's own event loop owns the database connections)."""
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    if role is not Role.USER:
        engine = make_engine(settings.database_url)
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE users SET role = :role WHERE email = :email"),
                {"role": role.value, "email": email},
            )
        await engine.dispose()
    answer = await login(client, email)
    client.cookies.clear()
    return bearer(answer.json()["access_token"])


async def publish(
    client: Client,
    auth: dict[str, str],
    data: bytes,
    *,
    name: str = "orbit",
    version: str = "1.0.0",
    **extra: Any,
) -> dict[str, Any]:
    body = {"package_name": name, "version": version, "file_name": f"{name}.tgz", "size": len(data)}
    created = await client.post(f"{BASE}/uploads/init", json={**body, **extra}, headers=auth)
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    sent = await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=data,
        headers={**auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert sent.status_code == 200, sent.text
    done = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert done.status_code == 200, done.text
    result: dict[str, Any] = done.json()
    return result


def stored_files(settings: Settings) -> list[Path]:
    """Objects and multipart parts (metadata files aside)."""
    found: list[Path] = []
    for part in ("packages", ".multipart"):
        root = Path(settings.upload_root) / part
        if root.exists():
            found.extend(p for p in root.rglob("*") if p.is_file())
    return sorted(found)


async def test_latest_is_the_highest_precedence_and_uploads_never_edit_metadata(
    app: Litestar, client: Client
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    first = await publish(client, auth, b"one", version="1.2.0", description="first words")
    for version in ("1.10.0-rc.1", "1.9.0"):
        again = await publish(client, auth, version.encode(), version=version, description="new")
        assert again["package_id"] == first["package_id"]
    versions = await client.get(f"{BASE}/{first['package_id']}/versions", headers=auth)
    assert versions.status_code == 200
    body = versions.json()
    assert body["latest"] == "1.10.0-rc.1"  # not 1.9.0, the last upload
    assert [v["version"] for v in body["items"]] == ["1.9.0", "1.10.0-rc.1", "1.2.0"]
    assert [v["latest"] for v in body["items"]] == [False, True, False]
    listed = (await client.get(BASE, headers=auth)).json()
    assert listed["items"][0]["description"] == "first words"
    assert listed["items"][0]["latest_version"] == "1.10.0-rc.1"
    assert listed["items"][0]["versions"] == 3


async def test_listing_shows_public_and_own_and_filters(app: Litestar, client: Client) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    eve = await sign_in(app, client, "eve@example.com")
    await publish(
        client, ada, b"a", name="ada-public", is_public=True, category="tools", language="Rust"
    )
    await publish(client, ada, b"b", name="ada-private", language="Go")
    await publish(client, eve, b"c", name="eve-private")
    names = lambda r: sorted(i["name"] for i in r.json()["items"])  # noqa: E731
    assert names(await client.get(BASE, headers=eve)) == ["ada-public", "eve-private"]
    assert names(await client.get(BASE, headers=ada)) == ["ada-private", "ada-public"]
    assert names(await client.get(BASE, params={"q": "PRIV"}, headers=ada)) == ["ada-private"]
    assert names(await client.get(BASE, params={"language": "rust"}, headers=eve)) == ["ada-public"]
    assert names(await client.get(BASE, params={"category": "tools"}, headers=ada)) == [
        "ada-public"
    ]
    assert names(await client.get(BASE, params={"q": "%"}, headers=ada)) == []
    page = (await client.get(BASE, params={"page_size": 1}, headers=ada)).json()
    assert (page["total"], page["pages"], len(page["items"])) == (2, 2, 1)


async def test_object_level_authorization(app: Litestar, client: Client) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    eve = await sign_in(app, client, "eve@example.com")
    private = await publish(client, ada, b"p", name="secret")
    public = await publish(client, ada, b"q", name="open", is_public=True)
    assert (
        await client.get(f"{BASE}/{private['package_id']}/versions", headers=eve)
    ).status_code == 404
    assert (await client.get(f"{BASE}/{private['package_id']}", headers=eve)).status_code == 404
    own = await client.get(f"{BASE}/{private['package_id']}", headers=ada)
    assert own.status_code == 200
    assert (own.json()["name"], own.json()["latest_version"]) == ("secret", "1.0.0")
    seen = await client.get(f"{BASE}/{public['package_id']}", headers=eve)
    assert seen.json()["name"] == "open"
    assert (
        await client.patch(
            f"{BASE}/{private['package_id']}", json={"description": "x"}, headers=eve
        )
    ).status_code == 404
    assert (await client.delete(f"{BASE}/{private['package_id']}", headers=eve)).status_code == 404
    assert (
        await client.get(f"{BASE}/{public['package_id']}/versions", headers=eve)
    ).status_code == 200
    assert (
        await client.patch(f"{BASE}/{public['package_id']}", json={"description": "x"}, headers=eve)
    ).status_code == 403
    assert (await client.delete(f"{BASE}/{public['package_id']}", headers=eve)).status_code == 403


async def test_owner_edits_metadata_and_unknown_fields_are_422(
    app: Litestar, client: Client
) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    package_id = (await publish(client, ada, b"x"))["package_id"]
    url = f"{BASE}/{package_id}"
    edited = await client.patch(url, json={"description": "better", "is_public": True}, headers=ada)
    assert edited.status_code == 200, edited.text
    assert edited.json()["description"] == "better"
    assert edited.json()["is_public"] is True
    put = await client.put(url, json={"language": "Python"}, headers=ada)
    assert put.json()["language"] == "Python"
    assert put.json()["description"] == "better"
    assert (await client.patch(url, json={"naem": "typo"}, headers=ada)).status_code == 422
    bad = await client.patch(url, json={"category": "nul\x00"}, headers=ada)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "category"


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_settings(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Settings:
    if request.param == "postgres":
        return make_settings(DATABASE_URL=request.getfixturevalue("postgres_url"))
    return make_settings()


async def test_identical_bytes_are_stored_once_and_freed_with_the_last_reference(
    any_db_settings: Settings,
) -> None:
    settings = any_db_settings
    if settings.database_backend == "postgresql":
        await truncate_all(settings.database_url)
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await sign_up(client, settings, "ada@example.com")
        one = await publish(client, ada, b"same bytes", name="one")
        two = await publish(client, ada, b"same bytes", name="two", version="2.0.0")
        three = await publish(client, ada, b"other", name="two", version="3.0.0")
        assert one["sha256"] == two["sha256"]
        assert len(stored_files(settings)) == 2  # one object per distinct content
        assert (await client.delete(f"{BASE}/{one['package_id']}", headers=ada)).status_code == 204
        assert len(stored_files(settings)) == 2  # still referenced by "two"
        gone = await client.delete(f"{BASE}/{three['package_id']}", headers=ada)
        assert gone.status_code == 204
        assert stored_files(settings) == []
        for table in ("packages", "package_versions", "package_blobs"):
            assert await fetch(settings, f"SELECT * FROM {table}") == []
        listed = await client.get(f"{BASE}/{one['package_id']}/versions", headers=ada)
        assert listed.status_code == 404


async def test_administration(app: Litestar, client: Client) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    admin = await sign_in(app, client, "root@example.com", Role.ADMIN)
    await publish(client, ada, b"12345", name="a", language="Rust", category="cli")
    await publish(client, ada, b"678", name="b", language="Rust")
    assert (await client.get(f"{BASE}/admin/summary", headers=ada)).status_code == 403
    summary = (await client.get(f"{BASE}/admin/summary", headers=admin)).json()
    assert summary["total_packages"] == 2
    assert summary["total_versions"] == 2
    assert summary["total_bytes"] == 8
    assert summary["top_languages"] == [{"name": "Rust", "count": 2}]
    assert summary["top_categories"] == [{"name": "cli", "count": 1}]
    packages = (await client.get(f"{BASE}/admin/packages", headers=admin)).json()
    assert {p["owner_email"] for p in packages["items"]} == {"ada@example.com"}
    assert packages["total"] == 2
    console = (await client.get("/api/v1/admin/summary", headers=admin)).json()
    assert console["total_packages"] == 2
    dashboard = (await client.get("/api/v1/dashboard/summary", headers=ada)).json()
    assert dashboard["metrics"]["packages"] == 2
    assert dashboard["metrics"]["downloads"] == 0


async def test_the_sweeper_leaves_no_objects_parts_or_rows(make_settings: SettingsFactory) -> None:
    settings = make_settings(UPLOAD_SESSION_TTL_SECONDS="1")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await sign_in(app, client, "ada@example.com")
        size = 12 * 1024 * 1024
        created = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "gone", "version": "1.0.0", "file_name": "g", "size": size},
            headers=ada,
        )
        upload_id = created.json()["upload_id"]
        sent = await client.patch(
            f"{BASE}/uploads/{upload_id}",
            content=b"z" * (9 * 1024 * 1024),  # one part and a staged tail
            headers={
                **ada,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert sent.status_code in {200, 410}
        assert stored_files(settings) or sent.status_code == 410
        sweep = await app.state.dishka_container.get(SweepUploads)
        storage = await app.state.dishka_container.get(ObjectStorage)
        deadline = time.monotonic() + 60
        while await fetch(settings, "SELECT id FROM upload_sessions"):
            assert time.monotonic() < deadline
            await sweep()
            await asyncio.sleep(0.2)
        for table in ("upload_sessions", "upload_parts", "upload_tails"):
            assert await fetch(settings, f"SELECT * FROM {table}") == []
        assert stored_files(settings) == []
        assert await storage.list_multipart_uploads() == []


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_the_sweeper_deletes_old_objects_no_row_or_blob_names(
    make_settings: SettingsFactory, request: pytest.FixtureRequest, backend: str
) -> None:
    """Objects left by a crash (a staged tail, a joined object with no session) go once older
    than the session TTL; a live session's bytes, a version's blob and other prefixes stay."""
    env = {"UPLOAD_SESSION_TTL_SECONDS": "2"}
    if backend == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        env.update(server.env())
    settings = make_settings(**env)
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        container = app.state.dishka_container
        storage = await container.get(ObjectStorage)
        sweep = await container.get(SweepUploads)
        lock = await container.get(Lock)
        ada = await sign_in(app, client, "ada@example.com")

        async def chunks(data: bytes) -> AsyncIterator[bytes]:
            yield data

        async def exists(key: str) -> bool:
            return await storage.size(key) is not None

        crashed_tail = f"packages/uploads/{uuid.uuid4()}/tail-{uuid.uuid4().hex}"
        crashed_object = f"packages/uploads/{uuid.uuid4()}/object"
        elsewhere = f"projects/{uuid.uuid4()}/file.bin"
        for key in (crashed_tail, crashed_object, elsewhere):
            await storage.put(key, chunks(b"left behind"))

        published = await publish(client, ada, b"kept by its blob" * 100, name="kept")
        blob_key = (
            await fetch(
                settings,
                "SELECT storage_key FROM package_blobs WHERE sha256 = :sha",
                sha=published["sha256"],
            )
        )[0][0]

        created = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "live", "version": "1.0.0", "file_name": "l", "size": 10_000},
            headers=ada,
        )
        live_id = created.json()["upload_id"]
        sent = await client.patch(
            f"{BASE}/uploads/{live_id}",
            content=b"t" * 1000,  # a staged tail
            headers={
                **ada,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert sent.status_code == 200, sent.text
        live_tail = (
            await fetch(
                settings, "SELECT storage_key FROM upload_tails WHERE session_id = :id", id=live_id
            )
        )[0][0]
        # A request holds the live session past its expiry: the sweeper must leave it alone.
        token = await lock.acquire(lock_name(live_id), 600)
        assert token is not None

        async def rows() -> list[str]:
            return [row[0] for row in await fetch(settings, "SELECT id FROM upload_sessions")]

        deadline = time.monotonic() + 60
        # Until the orphans are gone and the published upload's session row has expired too
        # (then only its blob names the object).
        while await exists(crashed_tail) or await exists(crashed_object) or len(await rows()) > 1:
            assert time.monotonic() < deadline, "the orphans were not swept"
            await sweep()
            await asyncio.sleep(0.2)
        await sweep()  # once more with every condition in place
        assert await rows() == [live_id]
        assert await exists(live_tail)
        assert await exists(blob_key)
        assert await exists(elsewhere)
        url = f"{BASE}/{published['package_id']}/versions/{published['version_id']}/download"
        download = await client.get(url, headers=ada)
        assert download.status_code == 200
        assert download.content == b"kept by its blob" * 100
        await lock.release(lock_name(live_id), token)
        while await fetch(settings, "SELECT id FROM upload_sessions"):
            assert time.monotonic() < deadline, "the expired session was not swept"
            await sweep()
            await asyncio.sleep(0.2)
        assert not await exists(live_tail)
        assert await exists(blob_key)
        await storage.delete(elsewhere)


async def test_downloads_ranges_and_counting(app: Litestar, client: Client) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    eve = await sign_in(app, client, "eve@example.com")
    data = bytes(range(256)) * 40
    result = await publish(client, ada, data, name="dl")
    url = f"{BASE}/{result['package_id']}/versions/{result['version_id']}/download"
    assert (await client.get(url, headers=eve)).status_code == 404  # private: not eve's
    whole = await client.get(url, headers=ada)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["etag"] == f'"{result["sha256"]}"'
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert "dl.tgz" in whole.headers["content-disposition"]
    part = await client.get(url, headers={**ada, "Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    bad = await client.get(url, headers={**ada, "Range": "bytes=999999-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{len(data)}"
    cached = await client.get(url, headers={**ada, "If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304
    assert (await client.head(url, headers=ada)).headers["etag"] == whole.headers["etag"]
    versions = (await client.get(f"{BASE}/{result['package_id']}/versions", headers=ada)).json()
    assert versions["items"][0]["downloads"] == 1  # ranges, 304 and HEAD do not count


EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


async def test_malware_is_refused_at_completion_and_alerted(
    app: Litestar, client: Client, settings: Settings
) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    body = {"package_name": "bad", "version": "1.0.0", "file_name": "e.com", "size": len(EICAR)}
    upload_id = (await client.post(f"{BASE}/uploads/init", json=body, headers=ada)).json()[
        "upload_id"
    ]
    await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=EICAR,
        headers={**ada, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    refused = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=ada)
    assert refused.status_code == 422
    assert refused.json()["code"] == "malware_detected"
    assert await fetch(settings, "SELECT * FROM package_versions") == []
    assert stored_files(settings) == []
    events = await fetch(
        settings, "SELECT action FROM audit_events WHERE action = 'malware.detected'"
    )
    assert len(events) == 1
    alerts = await fetch(settings, "SELECT rule FROM security_alerts")
    assert alerts


async def test_single_shot_publish_streams_through_the_same_path(
    app: Litestar, client: Client, settings: Settings
) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    fields = {"name": "one-shot", "version": "0.3.0", "language": "C", "is_public": "true"}
    data = b"single request " * 1000
    created = await client.post(
        BASE, data=fields, files={"file": ("one.tgz", data, "application/gzip")}, headers=ada
    )
    assert created.status_code == 201, created.text
    result = created.json()
    assert result["size"] == len(data)
    # the same bytes through the resumable path share the blob
    again = await publish(client, ada, data, name="one-shot", version="0.4.0")
    assert again["package_id"] == result["package_id"]
    assert len([p for p in stored_files(settings) if p.stat().st_size == len(data)]) == 1
    duplicate = await client.post(
        BASE, data=fields, files={"file": ("one.tgz", b"x", "application/gzip")}, headers=ada
    )
    assert duplicate.status_code == 409
    assert await fetch(settings, "SELECT * FROM upload_sessions WHERE state <> 'completed'") == []
    no_file = await client.post(BASE, data=fields, headers=ada)
    assert no_file.status_code in {415, 422}
    empty = await client.post(
        BASE,
        data={**fields, "version": "0.5.0"},
        files={"file": ("e.tgz", b"", "application/gzip")},
        headers=ada,
    )
    assert empty.status_code == 422
    infected = await client.post(
        BASE,
        data={**fields, "version": "0.6.0"},
        files={"file": ("e.com", EICAR, "application/octet-stream")},
        headers=ada,
    )
    assert infected.status_code == 422
    assert infected.json()["code"] == "malware_detected"
    versions = (await client.get(f"{BASE}/{result['package_id']}/versions", headers=ada)).json()
    assert [v["version"] for v in versions["items"]] == ["0.4.0", "0.3.0"]


async def test_single_shot_past_the_limit_is_413_and_keeps_nothing(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(MAX_UPLOAD_BYTES="1000")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        ada = await sign_in(app, client, "ada@example.com")
        answer = await client.post(
            BASE,
            data={"name": "big", "version": "1.0.0"},
            files={"file": ("b.bin", b"x" * 5000, "application/octet-stream")},
            headers=ada,
        )
        assert answer.status_code == 413
        assert stored_files(settings) == []
        assert await fetch(settings, "SELECT * FROM packages") == []


def parts(boundary: str, *items: tuple[str, str]) -> bytes:
    """A multipart body of ``(name, value)`` parts in this order; the name ``file`` is the file
    part (``a.tgz``)."""
    body = ""
    for name, value in items:
        filename = '; filename="a.tgz"' if name == "file" else ""
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'
            f"{value}\r\n"
        )
    return (body + f"--{boundary}--\r\n").encode()


async def post_parts(client: Client, auth: dict[str, str], *items: tuple[str, str]) -> Any:
    return await client.post(
        BASE,
        content=parts("b0undary", *items),
        headers={**auth, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )


async def test_single_shot_fields_after_the_file_part_are_applied(
    app: Litestar, client: Client, settings: Settings
) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    response = await post_parts(
        client,
        ada,
        ("name", "late"),
        ("file", "abc"),
        ("version", "1.0.0"),
        ("description", "told after the file"),
        ("category", "tools"),
        ("language", "python"),
        ("is_public", "true"),
    )
    assert response.status_code == 201, response.text
    package = (await client.get(f"{BASE}/{response.json()['package_id']}", headers=ada)).json()
    assert package["name"] == "late"
    assert package["description"] == "told after the file"
    assert (package["category"], package["language"], package["is_public"]) == (
        "tools",
        "python",
        True,
    )
    assert package["latest_version"] == "1.0.0"
    first = await post_parts(client, ada, ("file", "abcd"), ("name", "first"), ("version", "2.0.0"))
    assert first.status_code == 201, first.text


async def test_single_shot_errors_name_the_form_field_wherever_it_came(
    app: Litestar, client: Client, settings: Settings
) -> None:
    ada = await sign_in(app, client, "ada@example.com")
    for items in (
        [("name", "My Pack"), ("version", "1.0.0"), ("file", "abc")],
        [("file", "abc"), ("name", "My Pack"), ("version", "1.0.0")],
    ):
        refused = await post_parts(client, ada, *items)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["name"]
        assert "package_name" not in refused.text
    for items, field in (
        ([("file", "abc"), ("name", "late")], "version"),
        ([("file", "abc"), ("version", "1.0.0")], "name"),
        (
            [("file", "abc"), ("name", "x"), ("version", "1.0.0"), ("is_public", "maybe")],
            "is_public",
        ),
        (
            [("file", "abc"), ("name", "x"), ("version", "1.0.0"), ("language", "l" * 70_000)],
            "language",
        ),
        ([("name", "x"), ("file", "abc"), ("name", "y"), ("version", "1.0.0")], "name"),
    ):
        refused = await post_parts(client, ada, *items)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == field
    # malware is malware_detected (and alerted) even when the fields after it are wrong
    infected = await post_parts(client, ada, ("file", EICAR.decode()), ("version", "1.0.0"))
    assert infected.status_code == 422, infected.text
    assert infected.json()["code"] == "malware_detected"
    assert await fetch(settings, "SELECT * FROM security_alerts") != []
    assert stored_files(settings) == []
    assert await fetch(settings, "SELECT * FROM packages") == []
    assert await fetch(settings, "SELECT * FROM upload_sessions") == []
