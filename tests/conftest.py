"""Fixtures shared by every tier: real servers on loopback, databases, settings and the app."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.migrations import upgrade
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings, load_settings
from tests.services import (
    IN_CI,
    POSTGRES_HOST,
    POSTGRES_PORT,
    REDIS_HOST,
    REDIS_PORT,
    clamd_missing_reason,
    free_port,
    require,
    start_clamd,
)

POSTGRES_ADMIN_DSN = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# --- PostgreSQL ---------------------------------------------------------------------------


async def create_postgres_database() -> tuple[str, str]:
    name = f"orbsurv_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


async def drop_postgres_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    require("postgres")
    name, url = await create_postgres_database()
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await drop_postgres_database(name)


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database with no schema (migration tests)."""
    require("postgres")
    name, url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(name)


# --- SQLite ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per run; each test copies it (a copy is much faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "orbsurv.db"
    await asyncio.to_thread(upgrade, sqlite_url(path))
    return path


@pytest.fixture
def sqlite_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "orbsurv.db"
    shutil.copyfile(sqlite_template, path)
    return sqlite_url(path)


# --- both databases, for contract tests ------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each contract test runs once per database backend."""
    name = "sqlite_database_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


async def truncate_all(url: str) -> None:
    """Empty every table of the shared PostgreSQL test database."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    if database_url.startswith("postgresql"):
        await truncate_all(database_url)
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


# --- Redis -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    require("redis")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


# --- S3 (moto's server on loopback) ----------------------------------------------------


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str = "orbsurv-test"
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def env(self, endpoint_url: str | None = None) -> dict[str, str]:
        """The settings that store files in this bucket, reached at ``endpoint_url`` (a proxy
        in front of it, say) or at the server's own."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": endpoint_url or self.endpoint_url,
            "S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@contextmanager
def moto_s3(bucket: str = "orbsurv-test") -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port with ``bucket`` created; stopped on exit."""
    from moto.server import ThreadedMotoServer

    from orbsurv.adapters.storage.s3 import make_s3_client

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        info = S3Server(endpoint_url=f"http://127.0.0.1:{port}", bucket=bucket)
        client = make_s3_client(
            endpoint_url=info.endpoint_url,
            region=info.region,
            access_key_id=info.access_key_id,
            secret_access_key=info.secret_access_key,
        )
        client.create_bucket(Bucket=info.bucket)
        yield info
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_s3() as info:
        yield info


# --- clamd (started here, offline, with a signature database written here) ------------


@dataclass
class ClamdServer:
    port: int
    socket_path: Path

    @property
    def tcp_address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def unix_address(self) -> str:
        return f"unix://{self.socket_path}"


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """A real clamd on loopback; skipped with the reason where clamd is not installed, except
    with ``CI=true``, where that fails."""
    reason = clamd_missing_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason}; CI=true demands it", pytrace=False)
        pytest.skip(reason)
    process, port, sock = start_clamd(tmp_path_factory.mktemp("clamd"))
    try:
        yield ClamdServer(port=port, socket_path=sock)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except Exception:
            process.kill()


# --- SMTP (aiosmtpd on loopback) -------------------------------------------------------


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "554 Transaction failed"
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp_server_session() -> Iterator[SmtpServer]:
    capture = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(capture, hostname=capture.host, port=capture.port)
    controller.start()
    yield capture
    controller.stop()


@pytest.fixture
def smtp_server(smtp_server_session: SmtpServer) -> SmtpServer:
    smtp_server_session.messages.clear()
    smtp_server_session.refuse = False
    return smtp_server_session


# --- settings and the app --------------------------------------------------------------


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, sqlite_database_url: str) -> SettingsFactory:
    def build(**env: str) -> Settings:
        base = {
            "ENV": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": sqlite_database_url,
            "UPLOAD_ROOT": str(tmp_path / "uploads"),
            "VAR_DIR": str(tmp_path / "var"),
        }
        return load_settings({**base, **env}, env_file=None)

    return build


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> Litestar:
    return make_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


# --- an OpenAI-compatible model on loopback -----------------------------------------------


@pytest.fixture(scope="session")
def stub_model_session() -> Iterator[Any]:
    from tests.ai_stub import stub_model

    with stub_model() as model:
        yield model


@pytest.fixture
def model(stub_model_session: Any) -> Iterator[Any]:
    """The stub model, its script and recordings emptied for this test."""
    stub_model_session.reset()
    yield stub_model_session
    stub_model_session.release.set()
