"""The resumable upload protocol in-process: every status of init, HEAD, PATCH, complete, DELETE
and the tus surface, on the default adapters (SQLite, local storage, the database lock)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.domain.identity import Role
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, create_account, fetch, login

BASE = "/api/v1/software-packages"
MiB = 1024 * 1024


async def sign_in(app: Litestar, client: Client, email: str = "ada@example.com") -> dict[str, str]:
    await create_account(app, email, Role.USER)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


@pytest.fixture
async def auth(app: Litestar, client: Client) -> dict[str, str]:
    return await sign_in(app, client)


async def init(client: Client, auth: dict[str, str], size: int, **extra: Any) -> dict[str, Any]:
    body = {
        "package_name": "orbit-tools",
        "version": "1.0.0",
        "file_name": "orbit-tools-1.0.0.tar.gz",
        "size": size,
        **extra,
    }
    response = await client.post(f"{BASE}/uploads/init", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["location"].endswith(f"/uploads/{created['upload_id']}")
    return created


async def patch(
    client: Client, auth: dict[str, str], upload_id: str, offset: int, data: bytes, **headers: str
) -> Any:
    return await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=data,
        headers={
            **auth,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            **headers,
        },
    )


async def head_offset(client: Client, auth: dict[str, str], upload_id: str) -> int:
    response = await client.head(f"{BASE}/uploads/{upload_id}", headers=auth)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


def blob(size: int, seed: int = 1) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_small_upload_in_chunks_then_complete_is_idempotent(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = blob(100_000)
    created = await init(client, auth, len(data), sha256=hashlib.sha256(data).hexdigest())
    upload_id = created["upload_id"]
    assert created["offset"] == 0
    assert created["size"] == len(data)
    assert created["chunk_size"] >= 5 * MiB
    offset = 0
    for piece in (data[:1], data[1:40_000], data[40_000:]):
        response = await patch(client, auth, upload_id, offset, piece)
        assert response.status_code == 200, response.text
        offset += len(piece)
        assert response.json() == {"upload_id": upload_id, "offset": offset, "status": "receiving"}
        assert response.headers["upload-offset"] == str(offset)
        assert await head_offset(client, auth, upload_id) == offset
    first = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["size"] == len(data)
    again = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert again.status_code == 200
    assert again.json() == result
    rows = await fetch(settings, "SELECT version, size FROM package_versions")
    assert [(r[0], r[1]) for r in rows] == [("1.0.0", len(data))]
    assert await fetch(settings, "SELECT * FROM upload_tails") == []
    stored = [p for p in files_under(Path(settings.upload_root)) if p.stat().st_size == len(data)]
    assert len(stored) == 1
    assert stored[0].read_bytes() == data


async def test_parts_and_tails_across_the_minimum_part_size(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = blob(13 * MiB + 123, seed=2)
    upload_id = (await init(client, auth, len(data)))["upload_id"]
    cuts = [0, 3 * MiB, 4 * MiB, 9 * MiB + 7, 13 * MiB, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = await patch(client, auth, upload_id, start, data[start:end])
        assert response.status_code == 200, response.text
        assert response.json()["offset"] == end
    parts = await fetch(
        settings,
        "SELECT size FROM upload_parts WHERE session_id = :i ORDER BY part_number",
        i=upload_id,
    )
    assert len(parts) == 2
    assert all(r[0] >= 5 * MiB for r in parts[:-1]), parts  # only the last may be smaller
    tails = await fetch(settings, "SELECT size FROM upload_tails")
    assert sum(r[0] for r in parts) + sum(r[0] for r in tails) == len(data)
    response = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()


async def test_offset_mismatch_is_409_with_the_current_offset(
    client: Client, auth: dict[str, str]
) -> None:
    upload_id = (await init(client, auth, 10))["upload_id"]
    assert (await patch(client, auth, upload_id, 0, b"abcd")).status_code == 200
    for wrong in (0, 2, 7):
        response = await patch(client, auth, upload_id, wrong, b"xy")
        assert response.status_code == 409
        assert response.json()["code"] == "offset_mismatch"
        assert response.json()["offset"] == 4
        assert response.headers["upload-offset"] == "4"
    alias = await client.patch(
        f"{BASE}/uploads/{upload_id}",
        content=b"ef",
        headers={**auth, "Content-Type": "application/octet-stream", "X-Upload-Offset": "4"},
    )
    assert alias.status_code == 200
    assert alias.json()["offset"] == 6


async def test_past_the_declared_size_is_413_and_changes_nothing(
    client: Client, auth: dict[str, str]
) -> None:
    upload_id = (await init(client, auth, 10))["upload_id"]
    response = await patch(client, auth, upload_id, 0, b"x" * 11)
    assert response.status_code == 413
    assert response.json()["code"] == "upload_too_large"
    assert await head_offset(client, auth, upload_id) == 0


async def test_checksums(client: Client, auth: dict[str, str]) -> None:
    upload_id = (await init(client, auth, 8))["upload_id"]
    good = base64.b64encode(hashlib.sha256(b"abcd").digest()).decode()
    wrong = base64.b64encode(hashlib.sha256(b"zzzz").digest()).decode()
    response = await patch(
        client, auth, upload_id, 0, b"abcd", **{"Upload-Checksum": f"sha256 {wrong}"}
    )
    assert response.status_code == 460
    assert response.json()["code"] == "checksum_mismatch"
    assert await head_offset(client, auth, upload_id) == 0
    response = await patch(
        client, auth, upload_id, 0, b"abcd", **{"Upload-Checksum": f"sha256 {good}"}
    )
    assert response.status_code == 200
    assert response.json()["offset"] == 4
    for bad in ("crc32 AAAA", "sha256 not-base64!", "sha256 AAAA"):
        response = await patch(client, auth, upload_id, 4, b"efgh", **{"Upload-Checksum": bad})
        assert response.status_code == 400, bad
    assert await head_offset(client, auth, upload_id) == 4


async def test_bad_headers_and_media_types(client: Client, auth: dict[str, str]) -> None:
    upload_id = (await init(client, auth, 8))["upload_id"]
    url = f"{BASE}/uploads/{upload_id}"
    missing = await client.patch(
        url, content=b"a", headers={**auth, "Content-Type": "application/offset+octet-stream"}
    )
    assert missing.status_code == 400
    for value in ("-1", "abc", "1e3", "99999999999999999999999"):
        response = await patch(client, auth, upload_id, 0, b"a", **{"Upload-Offset": value})
        assert response.status_code == 400, value
    wrong_type = await client.patch(
        url, content=b"a", headers={**auth, "Content-Type": "text/plain", "Upload-Offset": "0"}
    )
    assert wrong_type.status_code == 415
    client.cookies.clear()
    assert (await client.head(url)).status_code == 401


async def test_another_users_upload_is_404(
    app: Litestar, client: Client, auth: dict[str, str]
) -> None:
    upload_id = (await init(client, auth, 8))["upload_id"]
    other = await sign_in(app, client, "eve@example.com")
    url = f"{BASE}/uploads/{upload_id}"
    assert (await client.head(url, headers=other)).status_code == 404
    assert (await patch(client, other, upload_id, 0, b"a")).status_code == 404
    assert (await client.delete(url, headers=other)).status_code == 404
    assert (await client.post(f"{url}/complete", headers=other)).status_code == 404
    assert (await client.head(f"{BASE}/uploads/nope", headers=auth)).status_code == 404


async def test_complete_before_the_last_byte_is_409(client: Client, auth: dict[str, str]) -> None:
    upload_id = (await init(client, auth, 8))["upload_id"]
    await patch(client, auth, upload_id, 0, b"abc")
    response = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert response.status_code == 409
    assert response.json()["code"] == "upload_incomplete"
    assert (await patch(client, auth, upload_id, 3, b"defgh")).status_code == 200


async def test_a_wrong_declared_digest_publishes_nothing(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    upload_id = (await init(client, auth, 4, sha256="0" * 64))["upload_id"]
    await patch(client, auth, upload_id, 0, b"abcd")
    response = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert response.status_code == 409
    assert response.json()["code"] == "sha256_mismatch"
    assert await fetch(settings, "SELECT * FROM package_versions") == []
    assert files_under(Path(settings.upload_root) / "packages") == []


async def test_duplicate_versions_are_409_with_nothing_stored(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    first = (await init(client, auth, 4))["upload_id"]
    second = (await init(client, auth, 4))["upload_id"]  # both opened before either completes
    for upload_id in (first, second):
        await patch(client, auth, upload_id, 0, b"abcd" if upload_id == first else b"wxyz")
    assert (await client.post(f"{BASE}/uploads/{first}/complete", headers=auth)).status_code == 200
    late = await client.post(f"{BASE}/uploads/{second}/complete", headers=auth)
    assert late.status_code == 409
    assert late.json()["code"] == "version_exists"
    early = await client.post(
        f"{BASE}/uploads/init",
        json={"package_name": "orbit-tools", "version": "1.0.0", "file_name": "x", "size": 4},
        headers=auth,
    )
    assert early.status_code == 409
    objects = files_under(Path(settings.upload_root) / "packages")
    assert [p.read_bytes() for p in objects if p.stat().st_size == 4] == [b"abcd"]


async def test_versions_that_differ_only_in_build_metadata_are_one_version(
    client: Client, auth: dict[str, str]
) -> None:
    """SemVer 2.0.0 section 10: build metadata does not set precedence, so ``1.0.0+b`` next to
    ``1.0.0+a`` would tie for ``latest``: 409 ``version_exists``, early and at completion."""
    first = (await init(client, auth, 4, version="1.0.0+a"))["upload_id"]
    racer = (await init(client, auth, 4, version="1.0.0+c"))["upload_id"]
    for upload_id in (first, racer):
        await patch(client, auth, upload_id, 0, b"abcd")
    assert (await client.post(f"{BASE}/uploads/{first}/complete", headers=auth)).status_code == 200
    late = await client.post(f"{BASE}/uploads/{racer}/complete", headers=auth)
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "version_exists"
    for version in ("1.0.0+b", "1.0.0"):
        early = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "orbit-tools", "version": version, "file_name": "x", "size": 4},
            headers=auth,
        )
        assert early.status_code == 409, (version, early.text)
    await init(client, auth, 4, version="1.0.0-rc.1+a")  # a pre-release ranks apart


async def test_deleting_a_completed_upload_names_the_route_that_exists(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    upload_id = (await init(client, auth, 4))["upload_id"]
    assert (await patch(client, auth, upload_id, 0, b"abcd")).status_code == 200
    done = await client.post(f"{BASE}/uploads/{upload_id}/complete", headers=auth)
    assert done.status_code == 200, done.text
    refused = await client.delete(
        f"{BASE}/uploads/{upload_id}", headers={**auth, "Tus-Resumable": "1.0.0"}
    )
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "upload_closed"
    assert "delete the version" not in problem["detail"]  # there is no such route
    assert "DELETE /software-packages/{package_id}" in problem["detail"]
    schema = (await client.get("/api/v1/openapi.json")).json()
    assert "delete" in schema["paths"]["/api/v1/software-packages/{package_id}"]
    assert await fetch(settings, "SELECT count(*) FROM package_versions") == [(1,)]
    package = done.json()["package_id"]
    assert (await client.delete(f"{BASE}/{package}", headers=auth)).status_code == 204
    assert await fetch(settings, "SELECT count(*) FROM package_versions") == [(0,)]


async def test_delete_aborts_and_removes_every_byte(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    upload_id = (await init(client, auth, 6 * MiB))["upload_id"]
    await patch(client, auth, upload_id, 0, blob(5 * MiB + 3))
    response = await client.delete(f"{BASE}/uploads/{upload_id}", headers=auth)
    assert response.status_code == 204
    assert (await client.head(f"{BASE}/uploads/{upload_id}", headers=auth)).status_code == 404
    assert files_under(Path(settings.upload_root) / "packages") == []
    assert await fetch(settings, "SELECT * FROM upload_sessions") == []
    assert await fetch(settings, "SELECT * FROM upload_parts") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "1.0"),
        ("version", "v1.0.0"),
        ("package_name", "../etc"),
        ("package_name", "bad\x00name"),
        ("file_name", "..."),
        ("description", "nul\x00here"),
        ("sha256", "xyz"),
        ("size", 0),
    ],
)
async def test_bad_declarations_are_422_naming_the_field(
    client: Client, auth: dict[str, str], settings: Settings, field: str, value: Any
) -> None:
    body: dict[str, Any] = {
        "package_name": "orbit-tools",
        "version": "1.0.0",
        "file_name": "a.tgz",
        "size": 4,
        field: value,
    }
    response = await client.post(f"{BASE}/uploads/init", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert await fetch(settings, "SELECT * FROM upload_sessions") == []


async def test_larger_than_the_limit_is_413(
    make_settings: Any,
) -> None:
    app = make_app(make_settings(MAX_UPLOAD_BYTES="100"))
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client)
        response = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "p", "version": "1.0.0", "file_name": "a", "size": 101},
            headers=auth,
        )
        assert response.status_code == 413
        options = await client.options(f"{BASE}/uploads")
        assert options.headers["tus-max-size"] == "100"


async def test_sizes_beyond_32_bits_are_stored_exactly(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    size = 5 * 1024**3 - 1  # under the default limit, past 2**32
    upload_id = (await init(client, auth, size))["upload_id"]
    response = await client.head(f"{BASE}/uploads/{upload_id}", headers=auth)
    assert response.headers["upload-length"] == str(size)


async def test_head_describes_no_body(client: Client, auth: dict[str, str]) -> None:
    # A HEAD answer's Content-Length and Content-Type describe what GET on the same address
    # would send (RFC 9110 9.3.2); this one has no body, so it must not claim four bytes of JSON.
    upload_id = (await init(client, auth, 10))["upload_id"]
    response = await client.head(f"{BASE}/uploads/{upload_id}", headers={**auth, **TUS})
    assert response.status_code == 200
    assert response.headers["upload-offset"] == "0"
    assert response.headers.get("content-length", "0") == "0"
    assert "content-type" not in response.headers


# --- tus ------------------------------------------------------------------------------------


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


TUS = {"Tus-Resumable": "1.0.0"}


async def test_tus_discovery(client: Client) -> None:
    response = await client.options(f"{BASE}/uploads")
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation",
        "termination",
        "checksum",
        "expiration",
    }
    assert "sha256" in response.headers["tus-checksum-algorithm"].split(",")
    assert int(response.headers["tus-max-size"]) == 5 * 1024**3


async def test_tus_creation_patch_and_completion(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = blob(3000, seed=3)
    response = await client.post(
        f"{BASE}/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(
                package_name="tus-pkg", version="0.1.0", filename="t.bin", is_public="true"
            ),
        },
    )
    assert response.status_code == 201, response.text
    assert response.content == b""  # headers only, not a JSON null
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "GMT" in response.headers["upload-expires"]
    url = response.headers["location"]
    assert url.startswith(f"{BASE}/uploads/")
    patch1 = await client.patch(
        url,
        content=data[:1000],
        headers={
            **auth,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
    )
    assert patch1.status_code == 204
    assert patch1.headers["upload-offset"] == "1000"
    # tus expiration: "MUST be included in every PATCH response if the upload is going to expire"
    assert patch1.headers["upload-expires"] == response.headers["upload-expires"]
    head = await client.head(url, headers={**auth, **TUS})
    assert head.headers["upload-offset"] == "1000"
    assert head.headers["upload-length"] == str(len(data))
    patch2 = await client.patch(
        url,
        content=data[1000:],
        headers={
            **auth,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "1000",
        },
    )
    assert patch2.status_code == 204, patch2.text
    rows = await fetch(
        settings,
        "SELECT p.name, v.version FROM packages p JOIN package_versions v ON v.package_id = p.id",
    )
    assert [(r[0], r[1]) for r in rows] == [("tus-pkg", "0.1.0")]


async def test_tus_refusals(client: Client, auth: dict[str, str]) -> None:
    bad_version = await client.post(
        f"{BASE}/uploads", headers={**auth, "Tus-Resumable": "0.2.2", "Upload-Length": "4"}
    )
    assert bad_version.status_code == 412
    assert bad_version.headers["tus-version"] == "1.0.0"
    no_length = await client.post(
        f"{BASE}/uploads",
        headers={**auth, **TUS, "Upload-Metadata": metadata(package_name="a", version="1.0.0")},
    )
    assert no_length.status_code == 400
    bad_meta = await client.post(
        f"{BASE}/uploads",
        headers={**auth, **TUS, "Upload-Length": "4", "Upload-Metadata": "package_name %%%"},
    )
    assert bad_meta.status_code == 400
    no_name = await client.post(
        f"{BASE}/uploads",
        headers={**auth, **TUS, "Upload-Length": "4", "Upload-Metadata": metadata(version="1.0.0")},
    )
    assert no_name.status_code == 422


async def test_every_answer_to_a_tus_request_says_tus_resumable(
    client: Client, auth: dict[str, str]
) -> None:
    """tus 1.0 core: ``Tus-Resumable`` "MUST be included in every request and response except
    for OPTIONS requests" — the refusals too (400, 401, 404, 409, 413, 415, 422, 460), which
    came from the exception handlers without it."""
    client.cookies.clear()  # Bearer only: the 401 below sends no credentials at all
    octets = {**TUS, "Content-Type": "application/offset+octet-stream"}
    created = await client.post(
        f"{BASE}/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": "4",
            "Upload-Metadata": metadata(package_name="said", version="1.0.0", filename="s.bin"),
        },
    )
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    sha_of_other = base64.b64encode(hashlib.sha256(b"zz").digest()).decode()
    refusals = {
        400: lambda: client.post(f"{BASE}/uploads", headers={**auth, **TUS, "Upload-Length": "x"}),
        401: lambda: client.head(url, headers=TUS),
        404: lambda: client.head(
            f"{BASE}/uploads/00000000-0000-0000-0000-000000000000", headers={**auth, **TUS}
        ),
        409: lambda: client.patch(
            url, content=b"ab", headers={**auth, **octets, "Upload-Offset": "3"}
        ),
        413: lambda: client.patch(
            url, content=b"abcdef", headers={**auth, **octets, "Upload-Offset": "0"}
        ),
        415: lambda: client.patch(
            url,
            content=b"ab",
            headers={**auth, **TUS, "Upload-Offset": "0", "Content-Type": "text/plain"},
        ),
        422: lambda: client.post(
            f"{BASE}/uploads",
            headers={
                **auth,
                **TUS,
                "Upload-Length": "4",
                "Upload-Metadata": metadata(version="1.0.0"),
            },
        ),
        460: lambda: client.patch(
            url,
            content=b"ab",
            headers={
                **auth,
                **octets,
                "Upload-Offset": "0",
                "Upload-Checksum": f"sha256 {sha_of_other}",
            },
        ),
    }
    for status, send in refusals.items():
        answer = await send()
        assert answer.status_code == status, (status, answer.text)
        assert answer.headers.get("tus-resumable") == "1.0.0", (status, dict(answer.headers))
    plain = await client.head(url, headers=auth)  # not a tus request: no tus header added
    assert plain.status_code == 200
    assert "tus-resumable" not in plain.headers


async def test_tus_errors_name_the_metadata_key_the_client_sent(
    client: Client, auth: dict[str, str]
) -> None:
    for key in ("filename", "file_name"):
        refused = await client.post(
            f"{BASE}/uploads",
            headers={
                **auth,
                **TUS,
                "Upload-Length": "4",
                "Upload-Metadata": metadata(package_name="a", version="1.0.0", **{key: ".."}),
            },
        )
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [key]


async def test_expired_uploads_answer_410(
    make_settings: Any,
) -> None:
    app = make_app(make_settings(UPLOAD_SESSION_TTL_SECONDS="1"))
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client)
        upload_id = (await init(client, auth, 4))["upload_id"]
        url = f"{BASE}/uploads/{upload_id}"
        deadline = time.monotonic() + 30
        while (await client.head(url, headers=auth)).status_code != 410:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert (await patch(client, auth, upload_id, 0, b"abcd")).status_code == 410


async def test_bytes_in_flight_count_against_the_quota(make_settings: Any) -> None:
    settings = make_settings(USER_QUOTA_BYTES="100")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client)
        first = await init(client, auth, 60)
        over = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "p2", "version": "1.0.0", "file_name": "b", "size": 50},
            headers=auth,
        )
        assert over.status_code == 413
        assert over.json()["code"] == "quota_exceeded"
        aborted = await client.delete(f"{BASE}/uploads/{first['upload_id']}", headers=auth)
        assert aborted.status_code == 204
        second = await init(client, auth, 50)
        await patch(client, auth, second["upload_id"], 0, b"q" * 50)
        done = await client.post(f"{BASE}/uploads/{second['upload_id']}/complete", headers=auth)
        assert done.status_code == 200
        usage = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
        assert [(r[0], r[1]) for r in usage] == [(50, 0)]
        deleted = await client.delete(f"{BASE}/{done.json()['package_id']}", headers=auth)
        assert deleted.status_code == 204
        usage = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
        assert [(r[0], r[1]) for r in usage] == [(0, 0)]


async def test_open_uploads_past_the_cap_are_409_until_one_ends(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(UPLOAD_MAX_OPEN_SESSIONS="2", UPLOAD_ROOT=str(tmp_path / "uploads"))
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await sign_in(app, client)
        first = await init(client, auth, 10, version="1.0.0")
        await init(client, auth, 10, version="1.0.1")
        over = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "p", "version": "1.0.2", "file_name": "c", "size": 10},
            headers=auth,
        )
        assert over.status_code == 409, over.text
        assert over.json()["code"] == "too_many_open_uploads"
        tus_over = await client.post(
            f"{BASE}/uploads",
            headers={
                **auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "10",
                "Upload-Metadata": "package_name cA==,version MS4wLjM=,filename ZA==",
            },
        )
        assert tus_over.status_code == 409, tus_over.text
        usage = await fetch(settings, "SELECT reserved_bytes FROM storage_usage")
        assert [r[0] for r in usage] == [20]  # the refused ones reserved nothing
        sessions = await fetch(settings, "SELECT count(*) FROM upload_sessions")
        assert sessions[0][0] == 2
        cancelled = await client.delete(f"{BASE}/uploads/{first['upload_id']}", headers=auth)
        assert cancelled.status_code == 204
        await init(client, auth, 10, version="1.0.2")
