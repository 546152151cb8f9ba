"""Client-paced streams through the real server process, on SQLite and on PostgreSQL.

* Uploads whose client stalls mid-body hold no pooled connection: one more of them than the pool
  has connections leaves every other database-backed request as fast as before, and each is
  answered 408 after the idle timeout with nothing left behind (no object, no quota
  reservation, no cleanup marker).
* Support chat takes at most one connection at a time, and none while the model writes: one
  more parallel message than the pool has connections all succeed, and a catalogue read
  meanwhile is not held up.
* A user streams at most UPLOAD_MAX_CONCURRENT_PER_USER bodies at once: one more is 429
  ``too_many_uploads`` with Retry-After at once, and the slots come back when the uploads end.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.ai_stub import Answer, StubModel, stub_model
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import clean_env, running_server
from tests.services import require

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
IDLE_SECONDS = 3
PER_USER = 4
PG_POOL = 20  # DB_POOL_SIZE, set explicitly (the default is 10)
SQLITE_POOL = 15  # SQLAlchemy's own pool for SQLite files: 5 connections + 10 overflow
BOUNDARY = "stalledboundary42"


@dataclass
class Server:
    url: str
    workdir: Path
    database_url: str
    pool: int  # connections the server's pool holds at most

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        if self.database_url.startswith("sqlite"):
            path = self.database_url.split(":///", 1)[1]
            with sqlite3.connect(self.workdir / path if not path.startswith("/") else path) as db:
                return list(db.execute(sql).fetchall())

        async def query() -> list[tuple[object, ...]]:
            dsn = self.database_url.replace("postgresql+asyncpg", "postgresql")
            conn = await asyncpg.connect(dsn)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(query())


@pytest.fixture(scope="module")
def model() -> Iterator[StubModel]:
    """An OpenAI-compatible model on loopback that takes its time to answer."""
    with stub_model() as stub:
        yield stub


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: StubModel
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(f"streams-{request.param}")
    env = clean_env(
        ENV="test",
        UPLOAD_IDLE_TIMEOUT_SECONDS=str(IDLE_SECONDS),
        UPLOAD_MAX_CONCURRENT_PER_USER=str(PER_USER),
        SUPPORT_MESSAGES_PER_MINUTE="1000",
        SUPPORT_DAILY_TOKENS="100000000",
        REGISTRATION_RATE_LIMIT="100000",  # every test signs up from loopback
        AI_BASE_URL=model.base_url,
        AI_MODEL="stub",
        AI_MAX_RETRIES="0",
    )
    if request.param == "sqlite":
        database_url = "sqlite+aiosqlite:///./var/orbsurv.db"
        with running_server(workdir, env) as url:
            yield Server(url, workdir, database_url, SQLITE_POOL)
        return
    require("postgres")
    name, database_url = asyncio.run(create_postgres_database())
    try:
        env.update(DATABASE_URL=database_url, DB_POOL_SIZE=str(PG_POOL))
        with running_server(workdir, env) as url:
            yield Server(url, workdir, database_url, PG_POOL)
    finally:
        asyncio.run(drop_postgres_database(name))


def register(url: str) -> tuple[str, str]:
    """A new account: (access token, user id)."""
    response = httpx.post(
        f"{url}/api/v1/auth/register",
        json={"email": f"s-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["access_token"]), str(body["user"]["id"])


def stalled_upload(url: str, token: str, *, file_bytes: int = 2000) -> socket.socket:
    """A project upload that sends its fields, the start of its file, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    parts = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nstalled\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"x" * file_bytes
    head = (
        "POST /api/v1/projects HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head + parts)
    return sock


def answer_of(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection or ``deadline`` passes."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset by the server after its answer
            break
        if not chunk:
            break
        received += chunk
        if b"\r\n\r\n" in received and b"}" in received.split(b"\r\n\r\n", 1)[1]:
            break
    return received


def timed_get(url: str, path: str, token: str) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return response.status_code, time.monotonic() - started


def test_stalled_uploads_hold_no_connection_and_are_answered_408_leaving_nothing(
    server: Server,
) -> None:
    stallers = [register(server.url) for _ in range(server.pool // PER_USER + 1)]
    bystander, _ = register(server.url)
    sockets = [
        stalled_upload(server.url, stallers[n % len(stallers)][0]) for n in range(server.pool + 1)
    ]
    try:
        sent_at = time.monotonic()
        # While every stalled upload waits on its client, other users' database reads stay
        # fast: sampled across most of the idle timeout (none of these waits on the uploads).
        timings = []
        while time.monotonic() - sent_at < IDLE_SECONDS * 0.7:
            for path in ("/api/v1/projects", "/api/v1/auth/sessions"):
                status, elapsed = timed_get(server.url, path, bystander)
                assert status == 200
                timings.append(elapsed)
        assert max(timings) < 1.0, f"a database read waited {max(timings):.1f} s"

        # Each stalled upload is answered after the idle timeout: 408, the connection closed.
        deadline = time.monotonic() + IDLE_SECONDS + 20
        answers = [answer_of(sock, deadline) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code":"request_timeout"' in answer
        assert b"connection: close" in answer.lower()

    # Nothing is left: no project, no stored or partial bytes, no reservation, no marker.
    for token, user_id in stallers:
        listed = httpx.get(
            f"{server.url}/api/v1/projects",
            params={"q": "stalled"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert [p for p in listed["items"] if p["owner_id"] == user_id] == []
        leftovers = server.workdir / "var" / "uploads" / "projects" / user_id
        assert not leftovers.exists() or not any(leftovers.rglob("*")), list(leftovers.rglob("*"))
        ids = f"'{user_id}'"
        assert server.rows(f"SELECT * FROM object_cleanups WHERE user_id = {ids}") == []
        reserved = server.rows(f"SELECT reserved_bytes FROM storage_usage WHERE user_id = {ids}")
        assert all(row[0] == 0 for row in reserved), reserved


def test_parallel_chat_messages_all_succeed_and_do_not_block_other_reads(
    server: Server, model: StubModel
) -> None:
    """One more message than the pool has connections while the model takes a second to
    answer each: a request that held its connection while the model wrote, then asked the
    pool for a second to store the reply, deadlocked them all (500 after the pool's 30 s
    timeout) and held up every other database read meanwhile."""
    model.reset()
    model.default = Answer(delay=1.0)
    token, _ = register(server.url)
    reader, _ = register(server.url)
    parallel = server.pool + 1
    start = threading.Barrier(parallel + 1)

    def ask(n: int) -> int:
        with httpx.Client(timeout=60) as client:
            start.wait()
            response = client.post(
                f"{server.url}/api/v1/support-chat/messages",
                json={"message": f"How do I upload a package? ({n})"},
                headers={"Authorization": f"Bearer {token}"},
            )
        return response.status_code

    def read() -> tuple[int, float]:
        start.wait()
        return timed_get(server.url, "/api/v1/software-packages", reader)

    for _ in range(2):  # two bursts: the second with every cache warm
        with ThreadPoolExecutor(max_workers=parallel + 1) as pool:
            asked = [pool.submit(ask, n) for n in range(parallel)]
            reading = pool.submit(read)
            statuses = [future.result() for future in asked]
            read_status, read_seconds = reading.result()
        assert statuses == [201] * parallel
        assert read_status == 200
        assert read_seconds < 1.0, f"GET /software-packages waited {read_seconds:.1f} s"
        start.reset()


def test_one_upload_more_than_the_per_user_limit_is_429_and_slots_come_back(
    server: Server,
) -> None:
    token, _ = register(server.url)
    sockets = [stalled_upload(server.url, token, file_bytes=10) for _ in range(PER_USER)]
    try:
        # The stalled uploads hold their slots from their first byte: poll until the server
        # has taken them all (then one more is refused at once, before its body is read).
        deadline = time.monotonic() + 15
        while True:
            refused = httpx.post(
                f"{server.url}/api/v1/projects",
                headers={"Authorization": f"Bearer {token}"},
                data={"name": "one too many"},
                files={"file": ("b.bin", b"payload")},
                timeout=30,
            )
            if refused.status_code == 429 or time.monotonic() > deadline:
                break
            assert refused.status_code == 201, refused.text
            time.sleep(0.1)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too_many_uploads"
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        for sock in sockets:
            sock.close()  # the client goes away: each upload ends and gives its slot back
    deadline = time.monotonic() + IDLE_SECONDS + 15
    while True:
        uploaded = [
            httpx.post(
                f"{server.url}/api/v1/projects",
                headers={"Authorization": f"Bearer {token}"},
                data={"name": f"after {n}"},
                files={"file": ("c.bin", b"payload")},
                timeout=30,
            ).status_code
            for n in range(PER_USER)
        ]
        if uploaded == [201] * PER_USER or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert uploaded == [201] * PER_USER
