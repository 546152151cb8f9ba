"""Resumable uploads against real server processes: stock tus clients, a SIGKILL mid-PATCH, two
servers sharing PostgreSQL, Redis and S3 (moto), concurrent and stalled PATCHes.

Every wait polls with a deadline; nothing assumes how fast a loaded machine is.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient import client as tus

from tests.conftest import S3Server, create_postgres_database, drop_postgres_database
from tests.e2e.conftest import clean_env
from tests.live import serving
from tests.services import IN_CI, require

API = "/api/v1"
UPLOADS = f"{API}/software-packages/uploads"
MiB = 1024 * 1024
PASSWORD = "correct horse battery"
DEADLINE = 120.0  # seconds; generous for a machine with both cores busy
# Fixed secrets: a token issued by one process must work on the next (or the other) one.
SECRETS = {
    "JWT_SECRET_KEY": "e2e-jwt-" + "k" * 40,
    "EMAIL_VERIFY_SECRET": "e2e-verify-" + "v" * 40,
    "PASSWORD_RESET_SECRET": "e2e-reset-" + "r" * 40,
}


def sign_up(base: str) -> dict[str, str]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = httpx.post(
        f"{base}{API}/auth/register", json={"email": email, "password": PASSWORD}, timeout=60
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def data_of(size: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def init(base: str, auth: dict[str, str], size: int, version: str = "1.0.0") -> str:
    response = httpx.post(
        f"{base}{UPLOADS}/init",
        json={"package_name": "e2e-pkg", "version": version, "file_name": "p.bin", "size": size},
        headers=auth,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    upload_id: str = response.json()["upload_id"]
    return upload_id


def head_offset(base: str, auth: dict[str, str], upload_id: str) -> int:
    response = httpx.head(f"{base}{UPLOADS}/{upload_id}", headers=auth, timeout=60)
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def patch(
    base: str,
    auth: dict[str, str],
    upload_id: str,
    offset: int,
    body: bytes,
    timeout: float = DEADLINE,
) -> Any:
    """A tus PATCH of ``body`` at ``offset``; waits up to ``timeout`` seconds for the answer."""
    return httpx.patch(
        f"{base}{UPLOADS}/{upload_id}",
        content=body,
        headers={
            **auth,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        },
        timeout=timeout,
    )


def patch_when_free(
    base: str, auth: dict[str, str], upload_id: str, offset: int, body: bytes
) -> Any:
    """PATCH, retrying while the upload is locked (423) by a writer that is gone."""
    deadline = time.monotonic() + DEADLINE
    while True:
        response = patch(base, auth, upload_id, offset, body)
        if response.status_code != 423 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def complete(base: str, auth: dict[str, str], upload_id: str) -> dict[str, Any]:
    response = httpx.post(f"{base}{UPLOADS}/{upload_id}/complete", headers=auth, timeout=DEADLINE)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


class RawPatch:
    """A PATCH on a raw socket, so a test controls when (and whether) each byte is sent."""

    def __init__(
        self, base: str, auth: dict[str, str], upload_id: str, offset: int, length: int
    ) -> None:
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=60)
        head = (
            f"PATCH {UPLOADS}/{upload_id} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"Authorization: {auth['Authorization']}\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\n"
            f"Content-Length: {length}\r\n"
            "Connection: close\r\n\r\n"
        )
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            return False  # the server answered early and closed
        return True

    def status(self) -> int:
        answer = b""
        while b"\r\n" not in answer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        self.sock.close()
        return int(answer.split(b" ", 2)[1]) if answer else 0

    def close(self) -> None:
        self.sock.close()


# --- one server on the default adapters (SQLite, local files, the database lock) ----------


def default_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The default adapters with everything under ``tmp_path``: SQLite at ``orbsurv.db``, files
    under ``uploads``; fixed secrets; plus ``extra``."""
    return clean_env(
        **SECRETS,
        ENV="test",
        LOG_LEVEL="WARNING",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'orbsurv.db'}",
        UPLOAD_ROOT=str(tmp_path / "uploads"),
        VAR_DIR=str(tmp_path / "var"),
        **extra,
    )


@pytest.fixture
def local_env(tmp_path: Path) -> dict[str, str]:
    return default_env(tmp_path, UPLOAD_IDLE_TIMEOUT_SECONDS="3", UPLOAD_LOCK_TTL_SECONDS="5")


def test_tuspy_uploads_unmodified_with_checksums(tmp_path: Path, local_env: dict[str, str]) -> None:
    data = data_of(7 * MiB + 321, "tuspy")
    with serving(tmp_path / "srv", local_env, DEADLINE) as server:
        auth = sign_up(server.url)
        client = tus.TusClient(f"{server.url}{UPLOADS}", headers=auth)
        uploader = client.uploader(
            file_stream=io.BytesIO(data),
            chunk_size=2 * MiB,
            metadata={"package_name": "tuspy-pkg", "version": "2.1.0", "filename": "t.bin"},
            upload_checksum=True,
        )
        uploader.upload()
        assert uploader.url is not None
        status = httpx.get(uploader.url, headers=auth, timeout=60).json()
        assert status["status"] == "completed"
        assert status["offset"] == len(data)
        assert status["sha256"] == hashlib.sha256(data).hexdigest()


def test_sigkill_mid_patch_then_resume_on_a_fresh_process(
    tmp_path: Path, local_env: dict[str, str]
) -> None:
    data = data_of(14 * MiB, "kill")
    with serving(tmp_path / "srv", local_env, DEADLINE) as first:
        auth = sign_up(first.url)
        upload_id = init(first.url, auth, len(data))
        raw = RawPatch(first.url, auth, upload_id, 0, len(data))
        raw.send(data[: 10 * MiB])  # more than one part: at least one becomes durable
        poll(lambda: head_offset(first.url, auth, upload_id) > 0, "a part became durable")
        first.kill()
        raw.close()
    with serving(tmp_path / "srv", local_env, DEADLINE) as second:
        started = time.monotonic()
        offset = head_offset(second.url, auth, upload_id)
        assert 0 < offset <= 10 * MiB
        response = patch_when_free(second.url, auth, upload_id, offset, data[offset:])
        assert response.status_code == 200, response.text
        resumed = time.monotonic() - started
        assert response.json()["offset"] == len(data)
        result = complete(second.url, auth, upload_id)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        print(f"resume after SIGKILL took {resumed:.2f}s")


def test_a_stalled_patch_does_not_block_its_own_resume(
    tmp_path: Path, local_env: dict[str, str]
) -> None:
    data = data_of(300_000, "stall")
    with serving(tmp_path / "srv", local_env, DEADLINE) as server:
        auth = sign_up(server.url)
        upload_id = init(server.url, auth, len(data))
        stalled = RawPatch(server.url, auth, upload_id, 0, len(data))
        stalled.send(data[:100_000])  # then silence, the connection left open (half-open)
        # The idle timeout (3 s here) drops the request and keeps what arrived.
        poll(lambda: head_offset(server.url, auth, upload_id) == 100_000, "stall abandoned")
        response = patch_when_free(server.url, auth, upload_id, 100_000, data[100_000:])
        assert response.status_code == 200, response.text
        assert complete(server.url, auth, upload_id)["sha256"] == hashlib.sha256(data).hexdigest()
        stalled.close()


JS = Path(__file__).parent / "js"


def tus_js_client() -> Path:
    """``tests/e2e/js`` with tus-js-client installed (``npm ci`` from the committed lock)."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        if IN_CI:
            pytest.fail("Node and npm are needed for the tus-js-client test")
        pytest.skip("Node and npm are not installed")
    if not (JS / "node_modules" / "tus-js-client").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=600)
    return JS / "upload.mjs"


def run_tus_js(endpoint: str, token: str, file: Path, chunk: int, meta: dict[str, str]) -> Any:
    script = tus_js_client()
    done = subprocess.run(
        ["node", str(script), endpoint, token, str(file), str(chunk), json.dumps(meta)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tus_js_client_uploads_unmodified(tmp_path: Path, local_env: dict[str, str]) -> None:
    data = data_of(6 * MiB + 99, "tus-js")
    source = tmp_path / "pkg.bin"
    source.write_bytes(data)
    with serving(tmp_path / "srv", local_env, DEADLINE) as server:
        auth = sign_up(server.url)
        token = auth["Authorization"].split(" ", 1)[1]
        meta = {"package_name": "js-pkg", "version": "3.0.0-beta.1", "filename": "pkg.bin"}
        answer = run_tus_js(f"{server.url}{UPLOADS}", token, source, 4 * MiB, meta)
        status = httpx.get(answer["url"], headers=auth, timeout=60).json()
        assert status["status"] == "completed"
        assert status["sha256"] == hashlib.sha256(data).hexdigest()


# --- two servers sharing PostgreSQL, Redis and S3 (moto) ----------------------------------


@pytest.fixture
def shared_env(tmp_path: Path, s3_server: S3Server, redis_url: str) -> Iterator[dict[str, str]]:
    require("postgres")
    import asyncio

    name, url = asyncio.run(create_postgres_database())
    try:
        yield clean_env(
            **SECRETS,
            ENV="test",
            LOG_LEVEL="WARNING",
            DATABASE_URL=url,
            REDIS_URL=redis_url,
            **s3_server.env(),
            VAR_DIR=str(tmp_path / "var"),
            UPLOAD_IDLE_TIMEOUT_SECONDS="5",
        )
    finally:
        asyncio.run(drop_postgres_database(name))


def test_two_servers_take_alternate_chunks(tmp_path: Path, shared_env: dict[str, str]) -> None:
    data = data_of(23 * MiB + 17, "alternate")
    with (
        serving(tmp_path / "a", shared_env, DEADLINE) as a,
        serving(tmp_path / "b", shared_env, DEADLINE) as b,
    ):
        auth = sign_up(a.url)
        upload_id = init(a.url, auth, len(data))
        offset, turn = 0, 0
        sizes = [3 * MiB, 6 * MiB, 1 * MiB, 7 * MiB + 5]  # tails, parts, tails joining parts
        while offset < len(data):
            server = (a, b)[turn % 2]
            size = sizes[turn % len(sizes)]
            chunk = data[offset : offset + size]
            response = patch(server.url, auth, upload_id, offset, chunk)
            assert response.status_code == 200, response.text
            offset += len(chunk)
            assert head_offset((b, a)[turn % 2].url, auth, upload_id) == offset
            turn += 1
        result = complete(b.url, auth, upload_id)
        assert result["sha256"] == hashlib.sha256(data).hexdigest()
        assert complete(a.url, auth, upload_id) == result  # idempotent on any server


def test_concurrent_patches_on_one_upload_never_interleave(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    size = 6 * MiB
    first_body, second_body = b"a" * size, b"b" * size
    with (
        serving(tmp_path / "a", shared_env, DEADLINE) as a,
        serving(tmp_path / "b", shared_env, DEADLINE) as b,
    ):
        auth = sign_up(a.url)
        upload_id = init(a.url, auth, size)
        slow = RawPatch(a.url, auth, upload_id, 0, size)
        slow.send(first_body[: size // 2])
        fast = patch(b.url, auth, upload_id, 0, second_body)
        slow.send(first_body[size // 2 :])
        slow_status = slow.status()
        statuses = sorted([slow_status, fast.status_code])
        assert statuses[0] == 200, statuses
        assert statuses[1] in {409, 423}, statuses
        winner = first_body if slow_status == 200 else second_body
        assert head_offset(a.url, auth, upload_id) == size
        assert complete(a.url, auth, upload_id)["sha256"] == hashlib.sha256(winner).hexdigest()
