"""Downloads whose stored object is gone or whose storage cannot be reached: a problem+json
with ``X-Request-ID`` and a log line, the same on GET and HEAD, for projects and package
versions, on local storage and S3; never the server's bare 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dishka import Provider, decorate
from litestar import Litestar

from orbsurv.application.errors import StorageUnavailable
from orbsurv.application.ports import ObjectStorage
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, fetch, signed_in
from tests.conftest import S3Server, SettingsFactory

API = "/api/v1"
DATA = b"orbsurv download fault test " * 40


class Unreachable:
    """The app's storage, whose ``size`` and ``read`` fail as an unreachable backend does
    while ``down``."""

    def __init__(self, inner: ObjectStorage) -> None:
        self.inner = inner
        self.down = False
        self.reads_fail = False  # ``read`` alone fails (the storage went away after ``size``)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def size(self, key: str) -> int | None:
        if self.down:
            raise StorageUnavailable("The file storage cannot be reached.")
        return await self.inner.size(key)

    def read(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if self.reads_fail:
            return self._failing()
        return self.inner.read(key, start=start, end=end)

    async def _failing(self) -> AsyncIterator[bytes]:
        raise StorageUnavailable("The file storage cannot be reached.")
        yield b""  # an async generator


class UnreachableProvider(Provider):
    """Wraps the app's ``ObjectStorage`` in ``Unreachable`` (kept here for the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.storage: Unreachable | None = None

    @decorate
    def unreachable(self, storage: ObjectStorage) -> ObjectStorage:
        self.storage = Unreachable(storage)
        return self.storage  # type: ignore[return-value]


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Settings:
    if request.param == "local":
        return make_settings()
    server: S3Server = request.getfixturevalue("s3_server")
    return make_settings(**server.env())


@pytest.fixture
def provider() -> UnreachableProvider:
    return UnreachableProvider()


@pytest.fixture
async def app(settings: Settings, provider: UnreachableProvider) -> Litestar:
    return make_app(settings, provider)


@pytest.fixture
async def auth(app: Litestar, client: Client) -> dict[str, str]:
    return await signed_in(app, client)


async def downloads(client: Client, auth: dict[str, str], settings: Settings) -> list[str]:
    """A project and a package version holding DATA; their download paths."""
    project = await client.post(
        f"{API}/projects",
        headers=auth,
        data={"name": "Lost map", "description": "x", "is_public": "false"},
        files={"file": ("map.zip", DATA, "application/zip")},
    )
    assert project.status_code == 201, project.text
    package = await client.post(
        f"{API}/software-packages",
        headers=auth,
        data={"name": "lost-pkg", "description": "x", "version": "1.0.0", "is_public": "false"},
        files={"file": ("p.bin", DATA, "application/octet-stream")},
    )
    assert package.status_code == 201, package.text
    created = package.json()
    return [
        f"{API}/projects/{project.json()['id']}/download",
        f"{API}/software-packages/{created['package_id']}/versions/{created['version_id']}"
        "/download",
    ]


async def object_keys(settings: Settings) -> list[str]:
    projects = await fetch(settings, "SELECT object_key FROM projects")
    blobs = await fetch(settings, "SELECT storage_key FROM package_blobs")
    return [row[0] for row in projects] + [row[0] for row in blobs]


def assert_problem(response: Any, status: int, code: str, *, head: bool) -> None:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/problem+json")
    if not head:
        body = response.json()
        assert body["code"] == code
        assert body["request_id"] == response.headers["x-request-id"]


async def test_a_deleted_object_is_a_logged_404_on_get_and_head(
    app: Litestar,
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    paths = await downloads(client, auth, settings)
    for path in paths:
        assert (await client.get(path, headers=auth)).content == DATA
    storage = await app.state.dishka_container.get(ObjectStorage)
    for key in await object_keys(settings):
        await storage.delete(key)
    for path in paths:
        with caplog.at_level(logging.ERROR, logger="orbsurv.downloads"):
            caplog.clear()
            got = await client.get(path, headers=auth)
            assert_problem(got, 404, "object_missing", head=False)
            assert any(
                r.levelno == logging.ERROR and "missing" in r.getMessage() for r in caplog.records
            )
            head = await client.head(path, headers=auth)
            assert_problem(head, 404, "object_missing", head=True)
            ranged = await client.get(path, headers={**auth, "Range": "bytes=0-9"})
            assert_problem(ranged, 404, "object_missing", head=False)


async def test_an_unreachable_storage_is_503_with_retry_after_on_get_and_head(
    client: Client, auth: dict[str, str], settings: Settings, provider: UnreachableProvider
) -> None:
    paths = await downloads(client, auth, settings)
    assert provider.storage is not None
    provider.storage.down = True
    for path in paths:
        for method in ("GET", "HEAD"):
            got = await client.request(method, path, headers=auth)
            assert_problem(got, 503, "storage_unavailable", head=method == "HEAD")
            assert int(got.headers["retry-after"]) > 0
    provider.storage.down = False
    for path in paths:
        assert (await client.get(path, headers=auth)).content == DATA


async def test_a_first_read_that_fails_is_still_a_problem(
    client: Client, auth: dict[str, str], settings: Settings, provider: UnreachableProvider
) -> None:
    paths = await downloads(client, auth, settings)
    assert provider.storage is not None
    provider.storage.reads_fail = True
    for path in paths:
        got = await client.get(path, headers=auth)
        assert_problem(got, 503, "storage_unavailable", head=False)
