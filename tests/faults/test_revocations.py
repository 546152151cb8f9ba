"""Revocations are durable: through the real server, a signed-out access token stays refused
when Redis restarts empty, when the sign-out happened while Redis was down, and when the
process restarts on the embedded default (SQLite, no Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import SECRETS
from tests.live import clean_env, running_server
from tests.services import RedisProcess, own_redis

PASSWORD = "correct horse battery"


def server_env(**overrides: str) -> dict[str, str]:
    """Fixed secrets (a restarted process must accept the tokens of the one before) and
    ``overrides``."""
    return clean_env(ENV="test", **SECRETS, **overrides)


pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    with own_redis() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/orbsurv.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def sign_up(url: str) -> str:
    """A new account's access token (the account opens one session)."""
    answer = httpx.post(
        f"{url}/api/v1/auth/register",
        json={"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["access_token"]
    return token


def me(url: str, token: str) -> int:
    """The status of ``GET /users/me`` on a new connection (so several workers get turns)."""
    with httpx.Client(timeout=30) as client:
        return client.get(
            f"{url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code


def log_out(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/auth/logout",
        headers={"Authorization": f"Bearer {token}"},
        json={},
        timeout=30,
    )


def test_redis_restarted_empty_forgets_no_logout(
    tmp_path: Path, database: str, redis_server: RedisProcess
) -> None:
    env = server_env(DATABASE_URL=database, REDIS_URL=redis_server.url)
    with running_server(tmp_path, env, 90) as url:
        token = sign_up(url)
        assert me(url, token) == 200
        assert log_out(url, token).status_code == 204
        assert me(url, token) == 401
    redis_server.restart_empty()
    with running_server(tmp_path, env, 90) as url:  # a process that never saw the logout
        assert me(url, token) == 401


@pytest.mark.postgres
def test_a_logout_while_redis_is_down_is_kept_when_it_returns(
    tmp_path: Path, postgres_url: str, redis_server: RedisProcess
) -> None:
    env = server_env(DATABASE_URL=postgres_url, REDIS_URL=redis_server.url)
    with running_server(tmp_path, env, 90, workers=2) as url:
        token, other = sign_up(url), sign_up(url)
        for _ in range(4):
            assert me(url, token) == 200
        redis_server.stop()

        started = time.monotonic()
        assert me(url, other) == 200  # the database answers meanwhile
        first_answer = time.monotonic() - started
        answer = log_out(url, token)
        assert answer.status_code == 204, answer.text  # durable in the database
        for _ in range(6):
            assert me(url, token) == 401

        redis_server.start()  # empty
        back = time.monotonic()
        ready = None
        # Every worker resubscribes and reads the database again: poll both (new connections
        # spread over them) for a while after Redis is back; the token never works again.
        while time.monotonic() - back < 6:
            assert me(url, token) == 401
            if ready is None:
                status = httpx.get(f"{url}/api/v1/readyz", timeout=10).status_code
                if status == 200:
                    ready = time.monotonic() - back
        assert ready is not None, "the server did not see Redis again"
        assert me(url, other) == 200
        print(
            f"first answer with Redis down: {first_answer:.3f}s; "
            f"ready again {ready:.3f}s after Redis came back"
        )


@pytest.mark.postgres
def test_a_silent_redis_delays_no_answer(
    tmp_path: Path, postgres_url: str, redis_server: RedisProcess
) -> None:
    """Redis paused (connections open, nothing answers): authenticated requests are answered at
    once, and a logout is refused on every worker within the bound: the worker that made it at
    once; the others once their heartbeat notices the silence (three heartbeats of 1 s, then
    they ask the database) or their database poll reads it (``REVOCATION_POLL_SECONDS``, 5 s),
    whichever comes first."""
    env = server_env(DATABASE_URL=postgres_url, REDIS_URL=redis_server.url)
    with running_server(tmp_path, env, 90, workers=2) as url:
        token, other = sign_up(url), sign_up(url)
        assert me(url, token) == 200
        redis_server.pause()
        try:
            started = time.monotonic()
            assert me(url, other) == 200
            first_answer = time.monotonic() - started
            started = time.monotonic()
            assert log_out(url, token).status_code == 204
            logout_took = time.monotonic() - started
            refused_in_a_row, deadline = 0, time.monotonic() + 15
            while refused_in_a_row < 20:
                assert time.monotonic() < deadline, "the logout did not reach every worker"
                refused_in_a_row = refused_in_a_row + 1 if me(url, token) == 401 else 0
            everywhere = time.monotonic() - started
        finally:
            redis_server.resume()
        print(
            f"with Redis paused: first answer {first_answer:.3f}s, logout {logout_took:.3f}s, "
            f"refused on every worker within {everywhere:.3f}s of the logout"
        )


def test_embedded_default_keeps_a_logout_across_a_restart(tmp_path: Path) -> None:
    env = server_env(VAR_DIR=str(tmp_path / "var"))
    with running_server(tmp_path, env, 90) as url:
        token = sign_up(url)
        assert me(url, token) == 200
        assert log_out(url, token).status_code == 204
        assert me(url, token) == 401
    with running_server(tmp_path, env, 90) as url:
        assert me(url, token) == 401
