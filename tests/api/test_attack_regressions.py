"""Regressions from probing the running service as an outsider, on PostgreSQL.

Each test names the request that misbehaved and the answer it should get. Numeric headers and
``Range`` are parsed by hand, so they meet bytes no JSON decoder filters: latin-1 digits such as
``²`` (``str.isdigit`` says yes, ``int`` says no) and numbers longer than Python converts.
The single-request package upload stores the bytes before it knows it may keep them, so the
quota and the clean-up on refusal are checked here with the storage and the usage rows.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, bearer, fetch
from tests.api.test_races import serve
from tests.conftest import SettingsFactory, truncate_all

BASE = "/api/v1/software-packages"
DEADLINE_SECONDS = 60
Client = AsyncTestClient[Litestar]


@pytest.fixture
async def pg(make_settings: SettingsFactory, postgres_url: str) -> Settings:
    await truncate_all(postgres_url)
    return make_settings(DATABASE_URL=postgres_url)


async def sign_up(client: Any, email: str = "ada@example.com") -> dict[str, str]:
    answer = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    client.cookies.clear()  # Bearer only
    return bearer(answer.json()["access_token"])


def stored_objects(settings: Settings) -> list[Path]:
    """Objects and multipart parts under the local storage root (metadata files aside)."""
    found: list[Path] = []
    for part in ("packages", ".multipart"):
        root = Path(settings.upload_root) / part
        if root.exists():
            found.extend(p for p in root.rglob("*") if p.is_file())
    return sorted(found)


async def usage(settings: Settings) -> list[tuple[int, int]]:
    rows = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
    return [(int(r[0]), int(r[1])) for r in rows]


def one_shot_fields(name: str, version: str) -> dict[str, str]:
    return {"name": name, "version": version}


# --- numeric headers with non-ASCII digits --------------------------------------------------


@pytest.mark.parametrize("name", ["Upload-Offset", "X-Upload-Offset"])
async def test_an_upload_offset_in_latin1_superscript_digits_is_400(
    pg: Settings, name: str
) -> None:
    """PATCH /uploads/{id} with ``Upload-Offset: \\xb9`` (``¹``) answered 500. (httpx's own
    ASGI transport: Litestar's test client re-encodes header bytes as UTF-8.)"""
    async with serve(make_app(pg)) as client:
        auth = await sign_up(client)
        created = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "p", "version": "1.0.0", "file_name": "a", "size": 3},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        upload_id = created.json()["upload_id"]
        answer = await client.patch(
            f"{BASE}/uploads/{upload_id}",
            content=b"abc",
            headers=[
                *auth.items(),
                ("Content-Type", "application/offset+octet-stream"),
                (name, b"\xb9"),
            ],
        )
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "bad_header"
        assert (await fetch(pg, 'SELECT "offset" FROM upload_sessions'))[0][0] == 0


async def test_a_tus_upload_length_in_latin1_superscript_digits_is_400(pg: Settings) -> None:
    """POST /uploads (tus creation) with ``Upload-Length: \\xb2`` (``²``) answered 500."""
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("package_name", "p"), ("version", "1.0.0"), ("filename", "a"))
    )
    async with serve(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            f"{BASE}/uploads",
            headers=[
                *auth.items(),
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Length", b"\xb2"),
                ("Upload-Metadata", meta),
            ],
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_header"
        assert await fetch(pg, "SELECT id FROM upload_sessions") == []


async def test_duplicate_tus_metadata_keys_are_400(pg: Settings) -> None:
    """tus 1.0 (Upload-Metadata): "All keys MUST be unique". Two ``package_name`` keys were
    accepted and the last one silently won."""

    def pair(key: str, value: str) -> str:
        return f"{key} {base64.b64encode(value.encode()).decode()}"

    meta = ",".join(
        [pair("package_name", "one"), pair("package_name", "two"), pair("version", "1.0.0")]
    )
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            f"{BASE}/uploads",
            headers={
                **auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "5",
                "Upload-Metadata": meta,
            },
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_metadata"
        assert await fetch(pg, "SELECT id FROM upload_sessions") == []


# --- Range with numbers longer than Python converts ------------------------------------------


@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        ("bytes=0-" + "9" * 5000, 206, "bytes 0-9/10"),  # a last byte past the end: clamped
        ("bytes=0-" + "0" * 4999 + "4", 206, "bytes 0-4/10"),  # leading zeros are still 4
        ("bytes=" + "1" * 5000 + "-", 416, "bytes */10"),  # a start past the end
        ("bytes=-" + "7" * 5000, 206, "bytes 0-9/10"),  # a suffix longer than the file
    ],
)
async def test_a_range_with_thousands_of_digits_is_answered_not_500(
    pg: Settings, header: str, status: int, content_range: str
) -> None:
    """GET .../download with ``Range: bytes=0-999...`` (5000 digits) answered 500: ``int()``
    refuses strings past 4300 digits. RFC 9110 §14.1.2: a last position past the end is the end;
    a first position past the end is unsatisfiable (416)."""
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        published = await client.post(
            BASE,
            data=one_shot_fields("ranged", "1.0.0"),
            files={"file": ("r.bin", b"0123456789", "application/octet-stream")},
            headers=auth,
        )
        assert published.status_code == 201, published.text
        ids = published.json()
        url = f"{BASE}/{ids['package_id']}/versions/{ids['version_id']}/download"
        answer = await client.get(url, headers={**auth, "Range": header})
        assert answer.status_code == status, answer.text[:200]
        assert answer.headers["content-range"] == content_range
