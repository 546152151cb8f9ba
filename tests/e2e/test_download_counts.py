"""Download counts through the real server process (granian), on local storage and on S3: a
client that reads 32 KiB of a multi-MiB project or package version and closes the connection
counts nothing, a Range request counts nothing, and one full read counts exactly one.

Under granian a whole-file answer from local storage could go out through the ASGI
``http.response.pathsend`` extension, which returns before the client read the file: an
abandoned transfer counted as a download. A counted download streams through the app, which
sees the client leave."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import S3Server
from tests.live import clean_env, running_server

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
SIZE = 40 * 1024 * 1024  # far more than the bytes in flight (socket buffers, the server's queue)
READ_BEFORE_CLOSING = 32 * 1024
ABANDONED = 3
DEADLINE_SECONDS = 30.0


@dataclass
class Item:
    """One stored file: where it downloads from and how to read its count."""

    url: str
    count: Callable[[], int]


@pytest.fixture(scope="module", params=["local", "s3"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = clean_env(ENV="test")
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        env.update(s3.env())
    workdir: Path = tmp_path_factory.mktemp(f"counts-{request.param}")
    with running_server(workdir, env) as url:
        yield url


@pytest.fixture(scope="module")
def auth(server: str) -> dict[str, str]:
    response = httpx.post(
        f"{server}/api/v1/auth/register",
        json={"email": f"c-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def content(seed: str) -> bytes:
    return (seed.encode() * (SIZE // len(seed) + 1))[:SIZE]


def a_project(server: str, auth: dict[str, str]) -> Item:
    response = httpx.post(
        f"{server}/api/v1/projects",
        headers=auth,
        data={"name": "big project"},
        files={"file": ("big.bin", content(uuid.uuid4().hex), "application/octet-stream")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    project_id = response.json()["id"]

    def count() -> int:
        got = httpx.get(f"{server}/api/v1/projects/{project_id}", headers=auth, timeout=30)
        assert got.status_code == 200, got.text
        return int(got.json()["downloads"])

    return Item(f"{server}/api/v1/projects/{project_id}/download", count)


def a_version(server: str, auth: dict[str, str]) -> Item:
    response = httpx.post(
        f"{server}/api/v1/software-packages",
        headers=auth,
        data={"name": f"big-{uuid.uuid4().hex[:8]}", "version": "1.0.0"},
        files={"file": ("big.tar.gz", content(uuid.uuid4().hex), "application/gzip")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    package_id, version_id = response.json()["package_id"], response.json()["version_id"]

    def count() -> int:
        got = httpx.get(f"{server}/api/v1/software-packages/{package_id}", headers=auth, timeout=30)
        assert got.status_code == 200, got.text
        return int(got.json()["downloads"])

    return Item(
        f"{server}/api/v1/software-packages/{package_id}/versions/{version_id}/download", count
    )


def abandon(url: str, auth: dict[str, str]) -> None:
    """Read ``READ_BEFORE_CLOSING`` bytes of the body, then close the connection."""
    with httpx.Client(timeout=30) as client, client.stream("GET", url, headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(SIZE)
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= READ_BEFORE_CLOSING:
                break
        assert read < SIZE


def read_fully(url: str, auth: dict[str, str], **headers: str) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        return client.get(url, headers={**auth, **headers})


def until_counted(item: Item, at_least: int) -> int:
    """The count once it reached ``at_least`` (the count is written after the last byte went
    out, so a client may see the body end first), or the count at the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (count := item.count()) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.mark.parametrize("make", [a_project, a_version], ids=["project", "version"])
def test_only_a_complete_full_transfer_counts(
    server: str, auth: dict[str, str], make: Callable[[str, dict[str, str]], Item]
) -> None:
    item = make(server, auth)
    assert item.count() == 0
    for _ in range(ABANDONED):
        abandon(item.url, auth)
    ranged = read_fully(item.url, auth, Range="bytes=0-1023")
    assert ranged.status_code == 206
    assert len(ranged.content) == 1024
    whole = read_fully(item.url, auth)
    assert whole.status_code == 200
    assert len(whole.content) == SIZE
    assert until_counted(item, 1) == 1
    again = read_fully(item.url, auth)
    assert len(again.content) == SIZE
    assert until_counted(item, 2) == 2
