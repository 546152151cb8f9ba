"""A dependency's outage is logged as one line saying so, never as a traceback, through the real
server (``docs/operations.md``, "Failure modes": a traceback is for our own bugs).

Each test notes where the server's log ends, breaks one dependency until the server has noticed
(the line that says so is in the log), repairs it, waits for the stack to heal and then reads
what the server logged meanwhile.
"""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import API, HEAL, Stack, sign_up, until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

NOTICED = 30.0  # seconds for the server to notice the outage (poll 5 s, heartbeats 3 s)


def logged_since(pg: Stack, offset: int) -> str:
    return pg.server.log_text()[offset:]


def tracebacks(text: str) -> list[str]:
    """Each traceback in ``text`` with the log line before it (the one that logged it)."""
    lines = text.splitlines()
    return [
        f"{lines[i - 1] if i else ''}\n{line}"
        for i, line in enumerate(lines)
        if line.startswith("Traceback")
    ]


def test_a_redis_outage_is_logged_without_a_traceback(pg: Stack) -> None:
    """Redis killed while users sign out and change their profile: the lost subscription, the
    revocation and profile messages that cannot be published are warnings without a traceback."""
    assert pg.redis is not None
    offset = len(pg.server.log_text())
    _, auth = sign_up(pg.url)
    pg.redis.stop()
    httpx.patch(f"{pg.url}{API}/account/profile", json={"name": "Outage"}, headers=auth, timeout=30)
    httpx.post(f"{pg.url}{API}/auth/logout", json={"everywhere": True}, headers=auth, timeout=30)
    until(
        lambda: True if "lost Redis channel" in logged_since(pg, offset) else None,
        NOTICED,
        "the server logs that it lost Redis",
    )
    pg.heal_all()
    until(
        lambda: True if httpx.get(f"{pg.url}{API}/readyz", timeout=10).status_code == 200 else None,
        HEAL,
        "ready again",
    )
    found = tracebacks(logged_since(pg, offset))
    assert not found, "\n\n".join(found)


def test_a_database_outage_is_logged_without_a_traceback(pg: Stack) -> None:
    """PostgreSQL black-holed until the revocation poll has failed: the poll's warning has no
    traceback (a database that does not answer is a dependency fault, not a bug)."""
    offset = len(pg.server.log_text())
    pg.proxies["postgres"].set_mode("blackhole")
    until(
        lambda: True if "could not read revocations" in logged_since(pg, offset) else None,
        NOTICED,
        "the revocation poll fails",
    )
    pg.heal_all()
    found = tracebacks(logged_since(pg, offset))
    assert not found, "\n\n".join(found)


def test_a_redis_outage_is_not_logged_once_per_request(pg: Stack) -> None:
    """With Redis down every authenticated request checks its session in the database. That is
    the designed fallback, and like the rate limiter's and the upload slots' fallbacks it is
    worth one warning per outage (they warn at most once a minute), not one line per request:
    a busy service would write thousands of identical lines a second."""
    assert pg.redis is not None
    _, auth = sign_up(pg.url)
    offset = len(pg.server.log_text())
    pg.redis.stop()
    try:
        until(
            lambda: True if "lost Redis channel" in logged_since(pg, offset) else None,
            NOTICED,
            "the server logs that it lost Redis",
        )
        for _ in range(20):
            answer = httpx.get(f"{pg.url}{API}/users/me", headers=auth, timeout=30)
            assert answer.status_code in {200, 503}, answer.text
        lines = [
            line for line in logged_since(pg, offset).splitlines() if "denylist unavailable" in line
        ]
    finally:
        pg.heal_all()
    assert len(lines) <= 2, f"{len(lines)} lines for 20 requests:\n" + "\n".join(lines[:3])
