"""Every dependency's bounds come from settings, are validated, and reach the adapters."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.storage.s3 import S3ObjectStorage
from orbsurv.main.app import make_app
from orbsurv.main.settings import SettingsError, load_settings

BASE = {"ENV": "test", "DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/x"}


def test_defaults_fit_ten_processes_in_a_default_postgresql() -> None:
    settings = load_settings(BASE, env_file=None)
    assert settings.db_pool_size == 10
    assert 0 < settings.db_pool_timeout_seconds <= 5
    assert settings.db_connect_timeout_seconds == 5
    assert settings.db_statement_timeout_seconds == 15
    assert settings.s3_max_attempts == 2
    assert settings.redis_timeout_seconds == 2
    assert settings.smtp_timeout_seconds == 10


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "101"),
        ("DB_POOL_TIMEOUT_SECONDS", "0"),
        ("DB_CONNECT_TIMEOUT_SECONDS", "-1"),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "soon"),
        ("S3_MAX_ATTEMPTS", "0"),
        ("S3_READ_TIMEOUT_SECONDS", "0"),
        ("S3_CONNECT_TIMEOUT_SECONDS", "61"),
        ("CLAMD_CONNECT_TIMEOUT_SECONDS", "0"),
        ("SMTP_TIMEOUT_SECONDS", "0"),
        ("REDIS_TIMEOUT_SECONDS", "0"),
    ],
)
def test_a_bad_bound_stops_start_up_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({**BASE, name: value}, env_file=None)


async def test_the_bounds_reach_the_engine_and_the_s3_client(tmp_path: object) -> None:
    settings = load_settings(
        {
            **BASE,
            "VAR_DIR": str(tmp_path),
            "DB_POOL_SIZE": "3",
            "DB_POOL_TIMEOUT_SECONDS": "1.5",
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": "b",
            "S3_ENDPOINT_URL": "http://127.0.0.1:1",
            "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "S3_CONNECT_TIMEOUT_SECONDS": "0.7",
            "S3_READ_TIMEOUT_SECONDS": "4",
            "S3_MAX_ATTEMPTS": "3",
        },
        env_file=None,
    )
    container = make_app(settings).state.dishka_container
    try:
        engine = await container.get(AsyncEngine)
        pool = engine.sync_engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool.timeout() == 1.5  # type: ignore[attr-defined]
        storage = await container.get(S3ObjectStorage)
        config = storage._s3.meta.config
        assert config.connect_timeout == 0.7
        assert config.read_timeout == 4
        assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
    finally:
        await container.close()
