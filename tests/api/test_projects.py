"""Projects over HTTP: streamed upload, listing, authorization per object, downloads, delete."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.projects import MAX_PARTS
from orbsurv.adapters.scanning.signature import EICAR
from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login
from tests.api.test_conventions import assert_problem
from tests.conftest import ClamdServer, SettingsFactory

API = "/api/v1"


async def sign_in(
    app: Litestar, client: Client, email: str, role: Role = Role.USER
) -> dict[str, str]:
    await create_account(app, email, role)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def form(
    file: bytes | None = b"hello project",
    file_name: str = "build.zip",
    **fields: str,
) -> dict[str, Any]:
    data = {"name": "Patrol map", "description": "Night route", "is_public": "false", **fields}
    files = {"file": (file_name, file, "application/zip")} if file is not None else None
    return {"data": data, "files": files}


async def upload(client: Client, auth: dict[str, str], **kwargs: Any) -> Any:
    return await client.post(f"{API}/projects", headers=auth, **form(**kwargs))


def stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.upload_root)
    if not root.exists():
        return []
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


async def rows(settings: Settings, table: str) -> int:
    return int((await fetch(settings, f"SELECT count(*) FROM {table}"))[0][0])


@pytest.fixture
async def app(make_settings: SettingsFactory) -> Litestar:
    return make_app(
        make_settings(ALLOWED_PROJECT_EXTENSIONS="zip,bin,txt", MAX_UPLOAD_BYTES="4096")
    )


@pytest.fixture
def settings_of(app: Litestar) -> Settings:
    settings: Settings = app.state.settings
    return settings


async def test_upload_then_read_list_and_download(app: Litestar, client: Client) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    body = b"0123456789" * 100
    response = await upload(client, auth, file=body)
    assert response.status_code == 201, response.text
    project = response.json()
    assert project["size"] == len(body)
    assert project["sha256"] == hashlib.sha256(body).hexdigest()
    assert project["file_name"] == "build.zip"
    assert project["is_public"] is False

    one = await client.get(f"{API}/projects/{project['id']}", headers=auth)
    assert one.json()["id"] == project["id"]
    listed = await client.get(f"{API}/projects", headers=auth, params={"q": "patrol"})
    assert [p["id"] for p in listed.json()["items"]] == [project["id"]]
    none = await client.get(f"{API}/projects", headers=auth, params={"q": "nothing like it"})
    assert none.json()["total"] == 0

    url = f"{API}/projects/{project['id']}/download"
    full = await client.get(url, headers=auth)
    assert full.status_code == 200
    assert full.content == body
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    assert full.headers["etag"] == etag
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["x-content-type-options"] == "nosniff"
    assert full.headers["content-length"] == str(len(body))
    assert full.headers["content-disposition"] == 'attachment; filename="build.zip"'
    assert "last-modified" in full.headers

    part = await client.get(url, headers={**auth, "Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == body[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(body)}"
    suffix = await client.get(url, headers={**auth, "Range": "bytes=-5"})
    assert suffix.content == body[-5:]

    head = await client.head(url, headers=auth)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == etag
    assert head.headers["content-length"] == str(len(body))

    cached = await client.get(url, headers={**auth, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    # If-Modified-Since (RFC 9110 §13.1.3): 304 at or after Last-Modified, unless an
    # If-None-Match is sent too, which then decides alone (§13.2.2)
    modified = full.headers["last-modified"]
    unchanged = await client.get(url, headers={**auth, "If-Modified-Since": modified})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    decided = await client.get(
        url, headers={**auth, "If-Modified-Since": modified, "If-None-Match": '"other"'}
    )
    assert decided.status_code == 200
    earlier = await client.get(
        url, headers={**auth, "If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}
    )
    assert earlier.status_code == 200
    garbage = await client.get(url, headers={**auth, "If-Modified-Since": "yesterday"})
    assert garbage.status_code == 200
    stale = await client.get(url, headers={**auth, "Range": "bytes=0-0", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == body
    fresh = await client.get(url, headers={**auth, "Range": "bytes=0-0", "If-Range": etag})
    assert fresh.status_code == 206
    several = await client.get(url, headers={**auth, "Range": "bytes=0-0,5-9"})
    assert several.status_code == 200
    assert several.content == body

    counted = await client.get(f"{API}/projects/{project['id']}", headers=auth)
    assert counted.json()["downloads"] == 6  # full GETs only: not HEAD, 206 or 304


@pytest.mark.parametrize("header", ["bytes=0-0,", "bytes=,0-0"])
async def test_empty_range_list_elements_are_ignored(
    app: Litestar, client: Client, header: str
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    project = (await upload(client, auth, file=b"ab" * 50)).json()
    response = await client.get(
        f"{API}/projects/{project['id']}/download", headers={**auth, "Range": header}
    )
    assert response.status_code == 206, response.text
    assert response.content == b"a"
    assert response.headers["content-range"] == "bytes 0-0/100"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=-0", "bytes=5000-", "bytes=x-y", "bytes=,"])
async def test_bad_ranges_are_416_with_the_size(app: Litestar, client: Client, header: str) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    project = (await upload(client, auth, file=b"x" * 100)).json()
    response = await client.get(
        f"{API}/projects/{project['id']}/download", headers={**auth, "Range": header}
    )
    assert_problem(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == "bytes */100"


async def test_non_ascii_names_get_filename_star(app: Litestar, client: Client) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    project = (await upload(client, auth, file_name="карта №1.zip")).json()
    response = await client.get(f"{API}/projects/{project['id']}/download", headers=auth)
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''%D0%BA%D0%B0%D1%80%D1%82%D0%B0%20%E2%84%961.zip" in disposition


async def test_private_projects_are_404_to_others(app: Litestar, client: Client) -> None:
    owner = await sign_in(app, client, "ada@example.com")
    other = await sign_in(app, client, "bob@example.com")
    admin = await sign_in(app, client, "root@example.com", Role.ADMIN)
    private = (await upload(client, owner)).json()
    public = (await upload(client, owner, is_public="true", name="Open map")).json()
    for path in ("", "/download"):
        response = await client.get(f"{API}/projects/{private['id']}{path}", headers=other)
        assert_problem(response, 404, "project_not_found")
    response = await client.patch(
        f"{API}/projects/{private['id']}", headers=other, json={"name": "mine"}
    )
    assert_problem(response, 404, "project_not_found")
    assert_problem(
        await client.delete(f"{API}/projects/{private['id']}", headers=other),
        404,
        "project_not_found",
    )
    response = await client.patch(
        f"{API}/projects/{public['id']}", headers=other, json={"name": "x"}
    )
    assert_problem(response, 403, "forbidden")
    listed = await client.get(f"{API}/projects", headers=other)
    assert [p["id"] for p in listed.json()["items"]] == [public["id"]]
    assert (await client.get(f"{API}/projects/{private['id']}", headers=admin)).status_code == 200
    assert (await client.get(f"{API}/projects", headers=admin)).json()["total"] == 2
    client.cookies.clear()
    assert (await client.get(f"{API}/projects")).status_code == 401


async def test_owner_changes_and_deletes(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    owner = await sign_in(app, client, "ada@example.com")
    project = (await upload(client, owner)).json()
    changed = await client.patch(
        f"{API}/projects/{project['id']}",
        headers=owner,
        json={"name": "Renamed", "is_public": True},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Renamed"
    assert changed.json()["visibility"] == "public"
    put = await client.put(
        f"{API}/projects/{project['id']}", headers=owner, json={"visibility": "private"}
    )
    assert put.json()["is_public"] is False
    bad = await client.patch(
        f"{API}/projects/{project['id']}", headers=owner, json={"name": "a\x00"}
    )
    assert_problem(bad, 422, "validation_error")
    unknown = await client.patch(f"{API}/projects/{project['id']}", headers=owner, json={"size": 1})
    assert unknown.status_code in {400, 422}
    assert len(stored_files(settings_of)) == 1

    gone = await client.delete(f"{API}/projects/{project['id']}", headers=owner)
    assert gone.status_code == 204
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0
    assert await rows(settings_of, "object_cleanups") == 0
    again = await client.delete(f"{API}/projects/{project['id']}", headers=owner)
    assert_problem(again, 404, "project_not_found")


async def test_an_admin_deletes_their_own_project_and_not_anothers(
    app: Litestar, client: Client
) -> None:
    owner = await sign_in(app, client, "ada@example.com")
    admin = await sign_in(app, client, "root@example.com", Role.ADMIN)
    project = (await upload(client, owner)).json()
    refused = await client.delete(f"{API}/projects/{project['id']}", headers=admin)
    assert_problem(refused, 403, "forbidden")  # a console write: a dev session does it
    own = (await upload(client, admin)).json()
    assert (await client.delete(f"{API}/projects/{own['id']}", headers=admin)).status_code == 204


@pytest.mark.parametrize(
    ("file_name", "fragment"),
    [
        ("../../etc/passwd.zip", "separators"),
        ("/etc/passwd.zip", "separators"),
        ("a\\b.zip", "separators"),
        ("..", "dots"),
        ("...", "dots"),
        ("x" * 1000 + ".zip", "longer"),
        ("report.exe", "not accepted"),
        ("noextension", "not accepted"),
    ],
)
async def test_bad_file_names_keep_nothing(
    app: Litestar, client: Client, settings_of: Settings, file_name: str, fragment: str
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    response = await upload(client, auth, file_name=file_name)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == "file"
    assert fragment in body["detail"]
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0


async def test_is_public_and_visibility_must_agree(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    owner = await sign_in(app, client, "ada@example.com")
    project = (await upload(client, owner)).json()
    url = f"{API}/projects/{project['id']}"
    for method in (client.patch, client.put):
        for body in (
            {"visibility": "private", "is_public": True, "name": "Changed"},
            {"visibility": "public", "is_public": False},
        ):
            refused = await method(url, headers=owner, json=body)
            problem = assert_problem(refused, 422, "validation_error")
            assert [e["field"] for e in problem["errors"]] == ["is_public", "visibility"]
    unchanged = (await client.get(url, headers=owner)).json()
    assert (unchanged["name"], unchanged["is_public"]) == ("Patrol map", False)
    both_public = {"visibility": "public", "is_public": True}
    agreed = await client.patch(url, headers=owner, json=both_public)
    assert agreed.status_code == 200, agreed.text
    assert agreed.json()["visibility"] == "public"
    both_private = {"visibility": "private", "is_public": False}
    agreed = await client.put(url, headers=owner, json=both_private)
    assert agreed.json()["is_public"] is False

    conflicting = await upload(client, owner, is_public="true", visibility="private")
    problem = assert_problem(conflicting, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["is_public", "visibility"]
    unknown = await upload(client, owner, visibility="everyone")
    assert assert_problem(unknown, 422, "validation_error")["errors"][0]["field"] == "visibility"
    assert await rows(settings_of, "projects") == 1
    public = await upload(client, owner, is_public="true", visibility="public")
    assert public.json()["is_public"] is True
    only_the_word = form(visibility="public")
    del only_the_word["data"]["is_public"]
    by_word = await client.post(f"{API}/projects", headers=owner, **only_the_word)
    assert by_word.status_code == 201, by_word.text
    assert by_word.json()["is_public"] is True
    # An empty input counts as absent (docs/api.md): a form's blank field never conflicts.
    blank_flag = await upload(client, owner, is_public="", visibility="public")
    assert blank_flag.status_code == 201, blank_flag.text
    assert blank_flag.json()["is_public"] is True
    blank_word = await upload(client, owner, is_public="true", visibility=" ")
    assert blank_word.status_code == 201, blank_word.text
    assert blank_word.json()["is_public"] is True


async def test_a_multi_part_extension_is_accepted(make_settings: SettingsFactory) -> None:
    settings = make_settings(ALLOWED_PROJECT_EXTENSIONS="zip,tar.gz")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client, "ada@example.com")
        accepted = await upload(client, auth, file_name="a.tar.gz", name="p")
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["file_name"] == "a.tar.gz"
        refused = await upload(client, auth, file_name="a.gz", name="p")
        body = assert_problem(refused, 422, "validation_error")
        assert body["errors"][0]["field"] == "file"
        assert "allowed: tar.gz, zip" in body["detail"]
        assert await rows(settings, "projects") == 1


async def test_bad_bodies_keep_nothing(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    empty = await upload(client, auth, file=b"")
    assert assert_problem(empty, 422, "validation_error")["errors"][0]["field"] == "file"
    urlencoded = await upload(client, auth, file=None)
    assert_problem(urlencoded, 415, "unsupported_media_type")
    missing = await client.post(
        f"{API}/projects", headers=auth, data={"name": "x"}, files={"note": (None, b"text")}
    )
    assert assert_problem(missing, 422, "validation_error")["errors"][0]["field"] == "file"
    too_big = await upload(client, auth, file=b"x" * 5000)
    assert_problem(too_big, 413, "payload_too_large")
    nul = await upload(client, auth, name="bad\x00name")
    assert assert_problem(nul, 422, "validation_error")["errors"][0]["field"] == "name"
    json_body = await client.post(f"{API}/projects", headers=auth, json={"name": "x"})
    assert_problem(json_body, 415, "unsupported_media_type")
    two_files = await client.post(
        f"{API}/projects",
        headers=auth,
        data={"name": "x", "description": ""},
        files=[("file", ("a.zip", b"one", "application/zip")), ("file", ("b.zip", b"two", "x/y"))],
    )
    assert_problem(two_files, 422, "validation_error")
    boundary = "b0undary"
    broken = await client.post(
        f"{API}/projects",
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.zip"'
            "\r\n\r\nabc"
        ).encode(),
    )
    assert_problem(broken, 400, "malformed_body")
    many = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="x{n}"\r\n\r\n{n}\r\n'
        for n in range(MAX_PARTS + 1)
    )
    too_many_parts = await client.post(
        f"{API}/projects",
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=f"{many}--{boundary}--\r\n".encode(),
    )
    problem = assert_problem(too_many_parts, 400, "malformed_body")
    assert f"at most {MAX_PARTS} parts" in problem["detail"]
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0
    assert await rows(settings_of, "object_cleanups") == 0
    usage = await fetch(settings_of, "SELECT used_bytes, reserved_bytes FROM storage_usage")
    assert [tuple(r) for r in usage] == [(0, 0)]


async def test_malware_is_refused_audited_and_alerted(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    response = await upload(client, auth, file=b"prefix " * 100 + EICAR + b" suffix")
    body = assert_problem(response, 422, "malware_detected")
    assert body["errors"][0]["field"] == "file"
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0
    events = await fetch(
        settings_of, "SELECT action FROM audit_events WHERE action = 'malware.detected'"
    )
    assert len(events) == 1
    alerts = await fetch(settings_of, "SELECT rule FROM security_alerts")
    assert [r[0] for r in alerts] == ["malware_found"]


async def test_quota_is_enforced_and_settled(make_settings: SettingsFactory) -> None:
    settings = make_settings(USER_QUOTA_BYTES="3000", MAX_UPLOAD_BYTES="100000")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client, "ada@example.com")
        first = await upload(client, auth, file=b"a" * 1500)
        assert first.status_code == 201
        refused = await upload(client, auth, file=b"b" * 1600)
        assert_problem(refused, 413, "quota_exceeded")
        usage = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
        assert [tuple(r) for r in usage] == [(1500, 0)]
        await client.delete(f"{API}/projects/{first.json()['id']}", headers=auth)
        assert (await upload(client, auth, file=b"c" * 1500)).status_code == 201


async def test_a_client_that_disconnects_leaves_nothing(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    boundary = "cut"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "\r\n"
    ).encode()

    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": head, "more_body": True},
        {"type": "http.request", "body": os.urandom(1000), "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = {
        **auth,
        "content-type": f"multipart/form-data; boundary={boundary}",
        "content-length": "3000",
        "host": "testserver",
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{API}/projects",
        "raw_path": f"{API}/projects".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
        "extensions": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0
    assert await rows(settings_of, "object_cleanups") == 0
    usage = await fetch(settings_of, "SELECT used_bytes, reserved_bytes FROM storage_usage")
    assert [tuple(r) for r in usage] == [(0, 0)]


async def test_dashboard_and_admin_figures_are_real(app: Litestar, client: Client) -> None:
    owner = await sign_in(app, client, "ada@example.com")
    admin = await sign_in(app, client, "root@example.com", Role.ADMIN)
    project = (await upload(client, owner, file=b"z" * 700)).json()
    url = f"{API}/projects/{project['id']}/download"
    await client.get(url, headers=owner)
    await client.get(url, headers={**owner, "Range": "bytes=0-9"})
    metrics = (await client.get(f"{API}/dashboard/summary", headers=owner)).json()["metrics"]
    assert metrics["projects"] == 1
    assert metrics["downloads"] == 1
    assert metrics["storage_bytes"] == 700
    summary = (await client.get(f"{API}/admin/summary", headers=admin)).json()
    assert summary["total_projects"] == 1


async def test_storage_down_is_503_and_keeps_nothing(make_settings: SettingsFactory) -> None:
    from tests.services import free_port

    settings = make_settings(
        STORAGE_BACKEND="s3",
        S3_BUCKET="nowhere",
        S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        S3_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client, "ada@example.com")
        response = await upload(client, auth)
        assert_problem(response, 503, "storage_unavailable")
        assert await rows(settings, "projects") == 0
        # the object could not be confirmed gone: the sweep retries its removal
        markers = await fetch(settings, "SELECT kind, reserved_bytes FROM object_cleanups")
        assert [tuple(r) for r in markers] == [("delete", 0)]
        usage = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
        assert [tuple(r) for r in usage] == [(0, 0)]


async def dev_session(app: Litestar, client: Client, email: str) -> dict[str, str]:
    """A dev signed in with the one-time code (``DEV_MASTER_OTP``: ENV=development)."""
    await create_account(app, email, Role.DEV)
    response = await login(client, email, scope="dev", otp="000000")
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def test_a_dev_session_sets_a_users_quota(make_settings: SettingsFactory) -> None:
    settings = make_settings(USER_QUOTA_BYTES="100000", ENV="development", INPROCESS_WORKER="false")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        owner_id = await create_account(app, "ada@example.com", Role.USER)
        owner = bearer((await login(client, "ada@example.com")).json()["access_token"])
        dev = await dev_session(app, client, "root@example.com")
        url = f"{API}/admin/users/{owner_id}/storage-quota"
        assert_problem(
            await client.put(url, headers=owner, json={"quota_bytes": 1}), 403, "forbidden"
        )
        answer = await client.put(url, headers=dev, json={"quota_bytes": 100})
        assert answer.status_code == 200, answer.text
        assert answer.json()["quota_bytes"] == 100
        assert_problem(await upload(client, owner, file=b"x" * 200), 413, "quota_exceeded")
        reset = await client.put(url, headers=dev, json={"quota_bytes": None})
        assert reset.json()["quota_bytes"] == 100000
        assert (await upload(client, owner, file=b"x" * 200)).status_code == 201
        missing = await client.put(
            f"{API}/admin/users/nobody/storage-quota", headers=dev, json={"quota_bytes": 5}
        )
        assert_problem(missing, 404, "user_not_found")
        negative = await client.put(url, headers=dev, json={"quota_bytes": -1})
        assert negative.status_code in {400, 422}
        events = await fetch(
            settings,
            "SELECT target_id, details FROM audit_events WHERE action = 'storage.quota_set' "
            "ORDER BY occurred_at",
        )
        assert [row.target_id for row in events] == [owner_id, owner_id]


async def test_the_quota_route_is_a_console_write_judged_before_its_body(
    make_settings: SettingsFactory,
) -> None:
    """PUT /admin/users/{id}/storage-quota sat outside the permission gate: an admin without a
    dev session raised their own quota (200), a dev without the code with a bad body was told
    422 before 403, and no refusal was audited. Now it is a console write: 403 before the body
    is read, audited as ``access.denied``, nothing changed."""
    settings = make_settings(USER_QUOTA_BYTES="1000", ENV="development", INPROCESS_WORKER="false")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        admin_id = await create_account(app, "admin@example.com", Role.ADMIN)
        admin = bearer((await login(client, "admin@example.com")).json()["access_token"])
        await create_account(app, "dev@example.com", Role.DEV)
        dev_plain = bearer((await login(client, "dev@example.com")).json()["access_token"])
        user = await sign_in(app, client, "ada@example.com")
        url = f"{API}/admin/users/{admin_id}/storage-quota"
        raised = await client.put(url, headers=admin, json={"quota_bytes": 10**12})
        assert_problem(raised, 403, "forbidden")
        for who, code in (
            (admin, "forbidden"),
            (dev_plain, "dev_session_required"),
            (user, "forbidden"),
        ):
            for body in ({"quota_bytes": "lots"}, {"nope": 1}, []):
                answer = await client.put(url, headers=who, json=body)
                assert_problem(answer, 403, code)
        client.cookies.clear()
        assert (await client.put(url, json={"quota_bytes": "x"})).status_code == 401
    assert (
        await fetch(settings, "SELECT * FROM audit_events WHERE action = 'storage.quota_set'") == []
    )
    denied = await fetch(
        settings,
        "SELECT count(*) FROM audit_events WHERE action = 'access.denied' AND target_id = :p",
        p=url,
    )
    assert denied[0][0] == 10
    quotas = await fetch(
        settings, "SELECT quota_bytes FROM storage_usage WHERE user_id = :u", u=admin_id
    )
    assert all(row.quota_bytes is None for row in quotas)


async def test_scanner_down_is_503_and_keeps_nothing(make_settings: SettingsFactory) -> None:
    from tests.services import free_port

    settings = make_settings(
        MALWARE_SCANNER="clamd", CLAMD_ADDRESS=f"tcp://127.0.0.1:{free_port()}"
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client, "ada@example.com")
        assert_problem(await upload(client, auth), 503, "scanner_unavailable")
        assert stored_files(settings) == []
        assert await rows(settings, "projects") == 0
        assert await rows(settings, "object_cleanups") == 0


async def test_clamd_refuses_malware_through_the_api(
    make_settings: SettingsFactory, clamd_server: ClamdServer
) -> None:
    settings = make_settings(MALWARE_SCANNER="clamd", CLAMD_ADDRESS=clamd_server.unix_address)
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client, "ada@example.com")
        assert_problem(await upload(client, auth, file=EICAR), 422, "malware_detected")
        assert stored_files(settings) == []
        clean = await upload(client, auth, file=b"plain bytes " * 1000)
        assert clean.status_code == 201, clean.text


def file_first(boundary: str, **fields: str) -> bytes:
    """A multipart body whose file part comes before the fields (as a client generated from the
    OpenAPI document sends optional fields: after the required ones, the file among them)."""
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n'
        "Content-Type: application/zip\r\n\r\nabc\r\n"
    )
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    return (body + f"--{boundary}--\r\n").encode()


async def post_raw(client: Client, auth: dict[str, str], body: bytes) -> Any:
    return await client.post(
        f"{API}/projects",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=b0undary"},
        content=body,
    )


async def test_fields_after_the_file_part_are_applied(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    late = file_first(
        "b0undary", name="Late name", description="told after", version="2.1", is_public="true"
    )
    created = await post_raw(client, auth, late)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["description"], body["version"]) == (
        "Late name",
        "told after",
        "2.1",
    )
    assert body["visibility"] == "public"
    assert body["size"] == 3
    assert len(stored_files(settings_of)) == 1


async def test_bad_fields_after_the_file_part_keep_nothing(
    app: Litestar, client: Client, settings_of: Settings
) -> None:
    auth = await sign_in(app, client, "ada@example.com")
    missing = await post_raw(client, auth, file_first("b0undary", description="no name"))
    assert assert_problem(missing, 422, "validation_error")["errors"][0]["field"] == "name"
    flag = await post_raw(client, auth, file_first("b0undary", name="x", is_public="maybe"))
    assert assert_problem(flag, 422, "validation_error")["errors"][0]["field"] == "is_public"
    long = await post_raw(client, auth, file_first("b0undary", name="x", description="d" * 70_000))
    assert assert_problem(long, 422, "validation_error")["errors"][0]["field"] == "description"
    first = b'--b0undary\r\nContent-Disposition: form-data; name="name"\r\n\r\nfirst\r\n'
    repeated = await post_raw(client, auth, first + file_first("b0undary", name="second"))
    assert assert_problem(repeated, 422, "validation_error")["errors"][0]["field"] == "name"
    blank = await upload(client, auth, name=" ")
    assert assert_problem(blank, 422, "validation_error")["detail"] == "name: is required."
    assert stored_files(settings_of) == []
    assert await rows(settings_of, "projects") == 0
