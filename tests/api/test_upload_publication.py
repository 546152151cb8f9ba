"""Publication after the last byte, when a dependency fails: an upload is never reported done
(tus: ``Upload-Offset == Upload-Length``) before its version is published, the publication is
retried by the client's next PATCH, ``/complete`` or the worker, and a content-addressed blob
whose object was lost is healed by the next upload of the same bytes."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar

from orbsurv.adapters.scanning.signature import SignatureScanner
from orbsurv.application.errors import ScannerUnavailable
from orbsurv.application.ports import MalwareScanner, ObjectStorage, ScanSession
from orbsurv.main.app import build_container, make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, fetch, signed_in
from tests.conftest import SettingsFactory

BASE = "/api/v1/software-packages"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
DEADLINE = 30.0  # seconds


@dataclass
class Switch:
    down: bool = False


class SwitchedScanner:
    """The signature scanner, or ``ScannerUnavailable`` (as clamd refusing) while down."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.inner = SignatureScanner()

    async def open(self) -> ScanSession:
        if self.switch.down:
            raise ScannerUnavailable("The malware scanner cannot be reached.")
        return await self.inner.open()


class ScannerProvider(Provider):
    def __init__(self, switch: Switch) -> None:
        super().__init__()
        self.switch = switch

    @provide(scope=Scope.APP)
    def scanner(self) -> Iterator[MalwareScanner]:
        yield SwitchedScanner(self.switch)


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(UPLOAD_LOCK_TTL_SECONDS="0.5")


@pytest.fixture
async def app(settings: Settings, switch: Switch) -> Litestar:
    return make_app(settings, ScannerProvider(switch))


@pytest.fixture
async def auth(app: Litestar, client: Client) -> dict[str, str]:
    return await signed_in(app, client)


def blob(size: int, seed: int) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size]


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def tus_create(client: Client, auth: dict[str, str], size: int, version: str) -> str:
    response = await client.post(
        f"{BASE}/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": metadata(package_name="pub-pkg", version=version, filename="p.bin"),
        },
    )
    assert response.status_code == 201, response.text
    url: str = response.headers["location"]
    return url


async def tus_patch(
    client: Client, auth: dict[str, str], url: str, offset: int, body: bytes
) -> Any:
    return await client.patch(
        url, content=body, headers={**auth, **TUS, **OCTETS, "Upload-Offset": str(offset)}
    )


async def unpublished(
    client: Client, auth: dict[str, str], switch: Switch, data: bytes, version: str
) -> str:
    """A tus upload of ``data`` whose bytes all arrived while the scanner was down (503, nothing
    published); its URL. The scanner is left down."""
    url = await tus_create(client, auth, len(data), version)
    switch.down = True
    assert (await tus_patch(client, auth, url, 0, data)).status_code == 503
    return url


async def tus_offset(client: Client, auth: dict[str, str], url: str) -> int:
    response = await client.head(url, headers={**auth, **TUS})
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


async def versions(settings: Settings) -> list[str]:
    rows = await fetch(settings, "SELECT version FROM package_versions ORDER BY version")
    return [row[0] for row in rows]


async def state_of(client: Client, auth: dict[str, str], url: str) -> dict[str, Any]:
    response = await client.get(url, headers=auth)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


async def download(client: Client, auth: dict[str, str], package_id: str, version_id: str) -> Any:
    return await client.get(f"{BASE}/{package_id}/versions/{version_id}/download", headers=auth)


async def test_a_tus_upload_is_not_done_until_its_version_is_published(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    data = blob(3000, seed=1)
    url = await tus_create(client, auth, len(data), "1.0.0")
    assert (await tus_patch(client, auth, url, 0, data[:1000])).status_code == 204

    switch.down = True
    last = await tus_patch(client, auth, url, 1000, data[1000:])
    assert last.status_code == 503, last.text
    assert last.json()["code"] == "scanner_unavailable"
    # Every byte is stored, but a tus client must not read "done" from HEAD.
    assert await tus_offset(client, auth, url) == len(data) - 1
    status = await state_of(client, auth, url)
    assert (status["status"], status["offset"]) == ("finalizing", len(data))
    assert await versions(settings) == []

    # The client sends the last byte again from there: still down, still not done.
    again = await tus_patch(client, auth, url, len(data) - 1, data[-1:])
    assert again.status_code == 503, again.text
    assert again.json()["code"] == "scanner_unavailable"
    assert await tus_offset(client, auth, url) == len(data) - 1
    assert await versions(settings) == []

    switch.down = False
    healed = await tus_patch(client, auth, url, len(data) - 1, data[-1:])
    assert healed.status_code == 204, healed.text
    assert healed.headers["upload-offset"] == str(len(data))
    assert await tus_offset(client, auth, url) == len(data)
    assert await versions(settings) == ["1.0.0"]
    got = await download(
        client, auth, healed.headers["x-package-id"], healed.headers["x-version-id"]
    )
    assert got.status_code == 200
    assert got.content == data

    # A PATCH at the end of a published upload answers its result; nothing is published twice.
    repeat = await tus_patch(client, auth, url, len(data), b"")
    assert repeat.status_code == 204, repeat.text
    assert repeat.headers["x-version-id"] == healed.headers["x-version-id"]
    assert await versions(settings) == ["1.0.0"]


async def test_an_empty_patch_at_the_length_publishes_and_more_bytes_are_413(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    data = blob(500, seed=2)
    url = await unpublished(client, auth, switch, data, "1.0.0")
    switch.down = False
    too_much = await tus_patch(client, auth, url, len(data) - 1, data[-1:] + b"x")
    assert too_much.status_code == 413, too_much.text
    assert await versions(settings) == []
    done = await tus_patch(client, auth, url, len(data), b"")
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == str(len(data))
    assert await versions(settings) == ["1.0.0"]


async def test_complete_after_a_failed_completion_publishes_once(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    data = blob(2000, seed=3)
    created = await client.post(
        f"{BASE}/uploads/init",
        json={"package_name": "pub-pkg", "version": "2.0.0", "file_name": "p.bin", "size": 2000},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    url = f"{BASE}/uploads/{upload_id}"
    sent = await client.patch(url, content=data, headers={**auth, **OCTETS, "Upload-Offset": "0"})
    assert sent.status_code == 200, sent.text

    switch.down = True
    failed = await client.post(f"{url}/complete", headers=auth)
    assert failed.status_code == 503, failed.text
    assert failed.json()["code"] == "scanner_unavailable"
    assert await tus_offset(client, auth, url) == len(data) - 1  # not done
    assert await versions(settings) == []

    switch.down = False
    done = await client.post(f"{url}/complete", headers=auth)
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
    again = await client.post(f"{url}/complete", headers=auth)
    assert again.json() == done.json()
    assert await versions(settings) == ["2.0.0"]
    assert await tus_offset(client, auth, url) == len(data)


async def test_the_worker_publishes_an_upload_left_finalizing(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    data = blob(4000, seed=4)
    url = await unpublished(client, auth, switch, data, "3.0.0")

    from orbsurv.main.worker import publish_uploads

    # A worker process of its own (another container on the same database and storage).
    worker = build_container(settings, ScannerProvider(switch))
    try:
        started = time.monotonic()
        while time.monotonic() - started < 2.0:  # past the grace, still down: nothing moves
            assert await publish_uploads(worker) == 0
        assert (await state_of(client, auth, url))["status"] == "finalizing"
        assert await versions(settings) == []

        switch.down = False
        deadline = time.monotonic() + DEADLINE
        while await publish_uploads(worker) == 0:
            assert time.monotonic() < deadline, "the worker never published the upload"
        assert await publish_uploads(worker) == 0  # nothing left to publish
    finally:
        await worker.close()
    status = await state_of(client, auth, url)
    assert status["status"] == "completed"
    assert await tus_offset(client, auth, url) == len(data)
    assert await versions(settings) == ["3.0.0"]
    got = await download(client, auth, status["package_id"], status["version_id"])
    assert got.content == data
    audited = await fetch(
        settings,
        "SELECT action, ip, details FROM audit_events WHERE action LIKE 'package.%' "
        "ORDER BY action",
    )
    assert [row.action for row in audited] == ["package.created", "package.version_published"]
    assert all(row.ip is None and "worker" in str(row.details) for row in audited)


async def test_reuploading_lost_bytes_heals_the_blob(
    app: Litestar, client: Client, auth: dict[str, str], settings: Settings
) -> None:
    data = blob(1500, seed=5)
    first_url = await tus_create(client, auth, len(data), "1.0.0")
    first = await tus_patch(client, auth, first_url, 0, data)
    assert first.status_code == 204, first.text
    package_id, first_version = first.headers["x-package-id"], first.headers["x-version-id"]

    storage = await app.state.dishka_container.get(ObjectStorage)
    [(key,)] = await fetch(settings, "SELECT storage_key FROM package_blobs")
    await storage.delete(key)  # lost outside the application
    lost = await download(client, auth, package_id, first_version)
    assert lost.status_code == 404
    assert lost.json()["code"] == "object_missing"

    second_url = await tus_create(client, auth, len(data), "1.0.1")
    second = await tus_patch(client, auth, second_url, 0, data)
    assert second.status_code == 204, second.text
    [(healed_key, refs)] = await fetch(settings, "SELECT storage_key, ref_count FROM package_blobs")
    assert refs == 2
    assert await storage.size(healed_key) == len(data)
    for version_id in (first_version, second.headers["x-version-id"]):
        got = await download(client, auth, package_id, version_id)
        assert got.status_code == 200, got.text
        assert got.content == data


async def test_a_worker_does_not_count_an_upload_published_since_it_read_it(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    """A worker reads the uploads awaiting publication, then takes each one's lock in turn: one
    published meanwhile (by a request, or by another worker that read it too) was answered with
    its stored result and counted again, so two workers reported 2 publications of one upload.
    The worker's read is stale by then: ``pending_only`` makes it ``UploadClosed``."""
    from orbsurv.application.packages.ports import UploadStore
    from orbsurv.application.packages.uploads import CompleteUpload
    from orbsurv.domain.packages import UploadClosed

    data = blob(2500, seed=7)
    url = await unpublished(client, auth, switch, data, "5.0.0")
    switch.down = False
    worker = build_container(settings, ScannerProvider(switch))
    try:
        stale = await (await worker.get(UploadStore)).get(url.rsplit("/", 1)[-1])
        assert stale is not None
        complete = await worker.get(CompleteUpload)
        published = await complete.publish(stale)  # as another worker or a retry would
        assert published.version_id
        with pytest.raises(UploadClosed):
            await complete.publish(stale, pending_only=True)
        assert await complete.publish(stale) == published  # a retry stays idempotent
    finally:
        await worker.close()
    assert await versions(settings) == ["5.0.0"]


async def test_two_workers_publish_a_stuck_upload_once(
    client: Client, auth: dict[str, str], switch: Switch, settings: Settings
) -> None:
    import asyncio

    from orbsurv.main.worker import publish_uploads

    data = blob(2500, seed=6)
    url = await unpublished(client, auth, switch, data, "4.0.0")
    switch.down = False
    workers = [build_container(settings, ScannerProvider(switch)) for _ in range(2)]
    try:
        published = 0
        deadline = time.monotonic() + DEADLINE
        while published == 0:
            assert time.monotonic() < deadline, "no worker published the upload"
            published = sum(await asyncio.gather(*(publish_uploads(w) for w in workers)))
        assert published == 1
        assert sum(await asyncio.gather(*(publish_uploads(w) for w in workers))) == 0
    finally:
        for worker in workers:
            await worker.close()
    assert await versions(settings) == ["4.0.0"]
    assert (await state_of(client, auth, url))["status"] == "completed"
