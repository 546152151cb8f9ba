"""Content-addressed package blobs under concurrency, on PostgreSQL: several users publishing the
same bytes at the same moment (single-shot and resumable) all get their version; the shared blob
row is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` and a reference bump, so a racing
insert of the blob is never a false 409 ``version_exists``, and a resumable upload is never
aborted (its bytes deleted) because another user's publication won the insert. A real version
conflict is still 409, and two first versions of one new package published at once share it.

The requests run concurrently in the test's own event loop (httpx's ASGI transport)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from litestar import Litestar

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login
from tests.api.test_races import serve
from tests.conftest import SettingsFactory, truncate_all

BASE = "/api/v1/software-packages"
USERS = 4
ROUNDS = 3


@pytest.fixture
async def pg_settings(make_settings: SettingsFactory, postgres_url: str) -> Settings:
    await truncate_all(postgres_url)
    return make_settings(DATABASE_URL=postgres_url, INPROCESS_WORKER="false")


async def users(app: Litestar, client: Client, count: int) -> list[dict[str, str]]:
    headers = []
    for n in range(count):
        email = f"user{n}@example.com"
        await create_account(app, email, Role.USER)
        response = await login(client, email)
        assert response.status_code == 200, response.text
        headers.append(bearer(response.json()["access_token"]))
    return headers


def payload(round_: int) -> bytes:
    return hashlib.sha256(f"shared bytes {round_}".encode()).digest() * 4096  # 128 KiB


async def publish_once(
    client: Client, auth: dict[str, str], name: str, version: str, data: bytes
) -> Any:
    return await client.post(
        BASE,
        headers=auth,
        data={"name": name, "version": version},
        files={"file": (f"{name}.tar.gz", data, "application/gzip")},
    )


async def publish_resumably(
    client: Client, auth: dict[str, str], name: str, version: str, data: bytes
) -> Any:
    created = await client.post(
        f"{BASE}/uploads/init",
        headers=auth,
        json={
            "package_name": name,
            "version": version,
            "file_name": f"{name}.tar.gz",
            "size": len(data),
        },
    )
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    sent = await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=data,
        headers={**auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert sent.status_code == 200, sent.text
    return upload_id


async def downloaded(client: Client, auth: dict[str, str], package_id: str, vid: str) -> bytes:
    response = await client.get(f"{BASE}/{package_id}/versions/{vid}/download", headers=auth)
    assert response.status_code == 200, response.text
    return bytes(response.content)


async def test_users_publishing_identical_bytes_at_once_all_succeed(pg_settings: Settings) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        auths = await users(app, client, USERS)
        for round_ in range(ROUNDS):
            data = payload(round_)
            answers = await asyncio.gather(
                *(publish_once(client, a, f"pack-{round_}", "1.0.0", data) for a in auths)
            )
            assert [r.status_code for r in answers] == [201] * USERS, [r.text for r in answers]
            for auth, answer in zip(auths, answers, strict=True):
                body = answer.json()
                assert await downloaded(client, auth, body["package_id"], body["version_id"]) == (
                    data
                )
    blobs = await fetch(pg_settings, "SELECT ref_count FROM package_blobs")
    assert sorted(r[0] for r in blobs) == [USERS] * ROUNDS


async def test_resumable_uploads_of_identical_bytes_completing_at_once_all_publish(
    pg_settings: Settings,
) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        auths = await users(app, client, USERS)
        for round_ in range(ROUNDS):
            data = payload(round_)
            name = f"pack-{round_}"
            uploads = [await publish_resumably(client, a, name, "2.0.0", data) for a in auths]
            answers = await asyncio.gather(
                *(
                    client.post(f"{BASE}/uploads/{u}/complete", headers=a)
                    for u, a in zip(uploads, auths, strict=True)
                )
            )
            assert [r.status_code for r in answers] == [200] * USERS, [r.text for r in answers]
            for auth, answer in zip(auths, answers, strict=True):
                body = answer.json()
                assert await downloaded(client, auth, body["package_id"], body["version_id"]) == (
                    data
                )
    states = await fetch(pg_settings, "SELECT DISTINCT state FROM upload_sessions")
    assert [r[0] for r in states] == ["completed"]
    blobs = await fetch(pg_settings, "SELECT ref_count FROM package_blobs")
    assert sorted(r[0] for r in blobs) == [USERS] * ROUNDS


async def test_two_new_versions_of_one_new_package_at_once_share_the_package(
    pg_settings: Settings,
) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        (auth,) = await users(app, client, 1)
        for round_ in range(ROUNDS):
            answers = await asyncio.gather(
                *(
                    publish_once(client, auth, f"fresh-{round_}", f"1.{n}.0", payload(10 + n))
                    for n in range(USERS)
                )
            )
            assert [r.status_code for r in answers] == [201] * USERS, [r.text for r in answers]
            assert len({r.json()["package_id"] for r in answers}) == 1


async def test_the_same_version_at_once_is_one_201_and_409s(pg_settings: Settings) -> None:
    app = make_app(pg_settings)
    async with serve(app) as client:
        (auth,) = await users(app, client, 1)
        answers = await asyncio.gather(
            *(publish_once(client, auth, "same", "1.0.0", payload(20 + n)) for n in range(USERS))
        )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (USERS - 1), [r.text for r in answers]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"version_exists"}
