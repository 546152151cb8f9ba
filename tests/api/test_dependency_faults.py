"""Storage, scanner and disk failing under a request, and client media types that would reach
them: each a clear answer in bounded time, nothing partial kept, no reservation left behind.

* S3 that accepts and never answers (a paused server): 503 ``storage_unavailable`` within the
  configured S3 bounds, for an upload and for a download.
* clamd that accepts and resets: 503 ``scanner_unavailable``.
* a full disk under ``UPLOAD_ROOT`` (a 1 MiB tmpfs): 507 ``insufficient_storage`` for a project
  upload, a single-shot package upload and a tus chunk, with the partial bytes gone and the quota
  reservation given back.
* a media type with CR LF (tus ``filetype``, ``/uploads/init`` ``content_type``): 422 naming the
  field, on local storage and on S3 alike.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, fetch, signed_in
from tests.api.test_conventions import assert_problem
from tests.api.test_upload_publication import metadata as tus_metadata
from tests.conftest import S3Server, SettingsFactory
from tests.fault_proxy import FaultProxy, Resetter, black_hole

API = "/api/v1"
PACKAGES = f"{API}/software-packages"
#: S3 bounds small enough to notice a paused server quickly here (seconds, attempts).
FAST_S3 = {
    "S3_CONNECT_TIMEOUT_SECONDS": "0.5",
    "S3_READ_TIMEOUT_SECONDS": "0.5",
    "S3_MAX_ATTEMPTS": "1",
}


def s3_settings(make_settings: SettingsFactory, endpoint: str, **env: str) -> Settings:
    """The test bucket reached at ``endpoint`` (moto, a proxy in front of it, a black hole)."""
    return make_settings(
        **S3Server(endpoint_url=endpoint).env(), ALLOWED_PROJECT_EXTENSIONS="zip", **env
    )


async def upload_project(client: Client, auth: dict[str, str], data: bytes) -> Any:
    return await client.post(
        f"{API}/projects",
        headers=auth,
        data={"name": "Patrol map", "description": "", "is_public": "false"},
        files={"file": ("build.zip", data, "application/zip")},
    )


async def usage(settings: Settings) -> list[tuple[int, int]]:
    rows = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
    return [(int(r[0]), int(r[1])) for r in rows]


async def count(settings: Settings, table: str) -> int:
    return int((await fetch(settings, f"SELECT count(*) FROM {table}"))[0][0])


def assert_no_leak(body: dict[str, Any]) -> None:
    for leak in ("botocore", "Error", "Errno", "127.0.0.1", "Connection reset"):
        assert leak not in body["detail"], body["detail"]


# --- S3 that stops answering ---------------------------------------------------------------


@pytest.fixture
def hole() -> Iterator[FaultProxy]:
    with black_hole() as server:
        yield server


async def test_a_paused_s3_is_503_within_its_bounds_and_keeps_nothing(
    make_settings: SettingsFactory, hole: FaultProxy
) -> None:
    settings = s3_settings(make_settings, f"http://127.0.0.1:{hole.port}", **FAST_S3)
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await signed_in(app, client)
        started = time.monotonic()
        response = await upload_project(client, auth, b"project bytes")
        elapsed = time.monotonic() - started
        body = assert_problem(response, 503, "storage_unavailable")
    assert response.headers["retry-after"] == "1"
    assert "storage" in body["detail"]
    assert_no_leak(body)
    # the PutObject alone (one read timeout, no retries): removing what it may have left is
    # the sweep's job, not another timeout for the client to wait out
    assert elapsed < 3, elapsed
    assert hole.accepted >= 1
    assert await count(settings, "projects") == 0
    assert await usage(settings) == [(0, 0)]


async def test_a_download_from_a_paused_s3_is_503_within_its_bounds(
    make_settings: SettingsFactory, s3_server: S3Server
) -> None:
    with FaultProxy("127.0.0.1", int(s3_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        settings = s3_settings(make_settings, f"http://127.0.0.1:{proxy.port}", **FAST_S3)
        app = make_app(settings)
        async with AsyncTestClient(app) as client:
            auth = await signed_in(app, client)
            created = await upload_project(client, auth, b"stored while S3 answered")
            assert created.status_code == 201, created.text
            proxy.set_mode("blackhole")
            started = time.monotonic()
            response = await client.get(
                f"{API}/projects/{created.json()['id']}/download", headers=auth
            )
            elapsed = time.monotonic() - started
            body = assert_problem(response, 503, "storage_unavailable")
            assert_no_leak(body)
            assert elapsed < 5, elapsed
            proxy.set_mode("pass")
            again = await client.get(
                f"{API}/projects/{created.json()['id']}/download", headers=auth
            )
            assert again.status_code == 200
            assert again.content == b"stored while S3 answered"


# --- clamd that resets the connection ------------------------------------------------------


async def test_a_clamd_that_resets_is_503_and_keeps_nothing(
    make_settings: SettingsFactory,
) -> None:
    with Resetter() as resetter:
        settings = make_settings(
            MALWARE_SCANNER="clamd",
            CLAMD_ADDRESS=f"tcp://127.0.0.1:{resetter.port}",
            ALLOWED_PROJECT_EXTENSIONS="zip",
        )
        app = make_app(settings)
        async with AsyncTestClient(app) as client:
            auth = await signed_in(app, client)
            for size in (10, 300_000):  # reset before the verdict, and while bytes stream
                response = await upload_project(client, auth, b"x" * size)
                body = assert_problem(response, 503, "scanner_unavailable")
                assert response.headers["retry-after"] == "1"
                assert_no_leak(body)
    assert await count(settings, "projects") == 0
    assert await usage(settings) == [(0, 0)]
    assert [p for p in Path(settings.upload_root).rglob("*") if p.is_file()] == []


# --- a full disk under UPLOAD_ROOT ----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount rights; skipped without them)."""
    root = tmp_path / "small-disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def files_on(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name != "upload.json"]


TOO_BIG = b"z" * (2 * 1024 * 1024)  # twice the disk


async def test_a_full_disk_is_507_for_every_upload_path_and_keeps_nothing(
    make_settings: SettingsFactory, small_disk: Path
) -> None:
    settings = make_settings(
        UPLOAD_ROOT=str(small_disk / "uploads"),
        ALLOWED_PROJECT_EXTENSIONS="zip",
        MAX_UPLOAD_BYTES=str(8 * 1024 * 1024),
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        auth = await signed_in(app, client)
        project = await upload_project(client, auth, TOO_BIG)
        body = assert_problem(project, 507, "insufficient_storage")
        assert "Retry-After" not in project.headers
        assert_no_leak(body)

        single = await client.post(
            PACKAGES,
            data={"name": "one-shot", "version": "0.3.0"},
            files={"file": ("one.tgz", TOO_BIG, "application/gzip")},
            headers=auth,
        )
        assert_problem(single, 507, "insufficient_storage")

        created = await client.post(
            f"{PACKAGES}/uploads/init",
            json={
                "package_name": "orbit",
                "version": "1.0.0",
                "file_name": "orbit.tgz",
                "size": len(TOO_BIG),
            },
            headers=auth,
        )
        assert created.status_code == 201, created.text
        upload_id = created.json()["upload_id"]
        chunk = await client.patch(
            f"{PACKAGES}/uploads/{upload_id}",
            content=TOO_BIG,
            headers={
                **auth,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert_problem(chunk, 507, "insufficient_storage")
        state = await client.head(
            f"{PACKAGES}/uploads/{upload_id}", headers={**auth, "Tus-Resumable": "1.0.0"}
        )
        assert state.headers.get("upload-offset") == "0"  # nothing of the chunk counts
    assert await count(settings, "projects") == 0
    assert await count(settings, "package_versions") == 0
    # only the open tus session still holds its declared size; the failed ones gave theirs back
    assert await usage(settings) == [(0, len(TOO_BIG))]
    # no partial bytes: only the open session's claim ledger keeps a line or two
    leftovers = [p for p in files_on(small_disk) if p.stat().st_size > 0]
    assert all(p.name == "claims" for p in leftovers), leftovers


# --- media types a client declares -----------------------------------------------------------


@contextlib.asynccontextmanager
async def storage_client(
    backend: str, make_settings: SettingsFactory, s3_server: S3Server | None
) -> Any:
    if backend == "s3":
        assert s3_server is not None
        settings = s3_settings(make_settings, s3_server.endpoint_url)
    else:
        settings = make_settings()
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        yield app, client


@pytest.mark.parametrize("backend", ["local", "s3"])
@pytest.mark.parametrize(
    "media_type", ["text/plain\r\nX-Injected: 1", "text/\nplain", "text", 'text/plain; a="\x7f"']
)
async def test_a_bad_media_type_is_422_naming_the_field_on_every_storage(
    backend: str, media_type: str, make_settings: SettingsFactory, request: pytest.FixtureRequest
) -> None:
    s3_server = request.getfixturevalue("s3_server") if backend == "s3" else None
    async with storage_client(backend, make_settings, s3_server) as (app, client):
        auth = await signed_in(app, client)
        init = await client.post(
            f"{PACKAGES}/uploads/init",
            json={
                "package_name": "orbit",
                "version": "1.0.0",
                "file_name": "orbit.tgz",
                "size": 4,
                "content_type": media_type,
            },
            headers=auth,
        )
        body = assert_problem(init, 422, "validation_error")
        assert body["errors"][0]["field"] == "content_type"

        async def tus_create(filetype: str) -> Any:
            return await client.post(
                f"{PACKAGES}/uploads",
                headers={
                    **auth,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": "4",
                    "Upload-Metadata": tus_metadata(
                        package_name="orbit", version="1.0.0", filetype=filetype
                    ),
                },
            )

        body = assert_problem(await tus_create(media_type), 422, "validation_error")
        assert body["errors"][0]["field"] == "filetype"
        good = await tus_create('application/x-tar; charset="utf-8"')
        assert good.status_code == 201, good.text
