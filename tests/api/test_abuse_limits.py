"""Anonymous writes and refusal audits are bounded per client: regressions from load probes.

Each test names what an outsider could do and what it now gets. The client the budgets count is
the address the trusted-proxy rule resolves; the in-process test client's peer is not a trusted
proxy, so an ``X-Forwarded-For`` it sends must buy no fresh budget.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import bearer, fetch, sign_up
from tests.conftest import SettingsFactory, truncate_all

Client = AsyncTestClient[Litestar]
PASSWORD = "correct horse battery"


def event(n: int, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_type": "page_view",
        "action": "view",
        "page": f"/p/{n}",
        "client_id": f"c{n}",
        "metadata": metadata or {},
    }


async def count(settings: Settings, query: str) -> int:
    return int((await fetch(settings, query))[0][0])


async def test_analytics_events_are_rate_limited_per_client_ip(settings: Settings) -> None:
    """40 requests of 50 events each from one client, as fast as it could send them, were all
    202 (14 MB of rows in 0.7 s). Expected: ``ANALYTICS_RATE_LIMIT`` (default 30) requests a
    minute per client IP, then 429 ``rate_limited`` with ``Retry-After``; a spoofed
    ``X-Forwarded-For`` from an untrusted peer buys no fresh budget; nothing more is stored."""
    batch = {"events": [event(n) for n in range(50)]}
    async with AsyncTestClient(make_app(settings)) as client:
        answers = [
            (await client.post("/api/v1/analytics/events", json=batch)).status_code
            for _ in range(30)
        ]
        over = await client.post("/api/v1/analytics/events", json=batch)
        spoofed = await client.post(
            "/api/v1/analytics/events", json=batch, headers={"X-Forwarded-For": "198.51.100.7"}
        )
    assert answers == [202] * 30
    for answer in (over, spoofed):
        assert answer.status_code == 429, answer.text
        assert answer.json()["code"] == "rate_limited"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert await count(settings, "SELECT count(*) FROM analytics_events") == 30 * 50


async def test_cookie_consent_shares_the_analytics_budget(make_settings: SettingsFactory) -> None:
    """Cookie consent is an analytics event: it may not open a budget of its own."""
    settings = make_settings(ANALYTICS_RATE_LIMIT="2")
    consent = {"event_type": "cookie_consent", "action": "accepted"}
    async with AsyncTestClient(make_app(settings)) as client:
        codes = [
            (await client.post("/api/v1/analytics/events", json=consent)).status_code
            for _ in range(3)
        ]
    assert codes == [202, 202, 429]


async def test_an_analytics_body_over_its_limit_is_413_and_stores_nothing(
    settings: Settings,
) -> None:
    """A batch of 50 events with 1.5 KB of metadata each (about 80 KB, within every per-event
    bound) was 202: only the application's 1 MiB body limit applied. Expected: 413
    ``payload_too_large`` past ``ANALYTICS_MAX_BODY_BYTES`` (default 64 KiB), and nothing
    stored."""
    metadata = {f"k{i}": "x" * 480 for i in range(3)}
    body = msgspec.json.encode({"events": [event(n, metadata) for n in range(50)]})
    assert 64 * 1024 < len(body) < 1024 * 1024

    async with AsyncTestClient(make_app(settings)) as client:
        declared = await client.post(
            "/api/v1/analytics/events",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        small = await client.post("/api/v1/analytics/events", json=event(1, metadata))
    assert declared.status_code == 413, declared.text
    assert declared.json()["code"] == "payload_too_large"
    assert small.status_code == 202, small.text
    assert await count(settings, "SELECT count(*) FROM analytics_events") == 1


async def test_registration_is_rate_limited_per_client_ip_across_both_routes(
    settings: Settings,
) -> None:
    """POST /auth/register (and POST /users) took any number of accounts from one client: each
    one a user row, an audit row and a verification mail. Expected: ``REGISTRATION_RATE_LIMIT``
    (default 10 an hour) per client IP, both routes spending one budget, then 429
    ``rate_limited`` with ``Retry-After``, no account created and no mail queued."""
    async with AsyncTestClient(make_app(settings)) as client:
        codes = []
        for n in range(10):
            path = "/api/v1/auth/register" if n % 2 else "/api/v1/users"
            body = {"email": f"r{n}@example.com", "password": PASSWORD}
            codes.append((await client.post(path, json=body)).status_code)
        refused = [
            await client.post(path, json={"email": "late@example.com", "password": PASSWORD})
            for path in ("/api/v1/auth/register", "/api/v1/users")
        ]
    assert codes == [201] * 10
    for answer in refused:
        assert answer.status_code == 429, answer.text
        assert answer.json()["code"] == "rate_limited"
        assert int(answer.headers["Retry-After"]) > 60
    assert await count(settings, "SELECT count(*) FROM users") == 10
    late = await fetch(
        settings, "SELECT count(*) FROM outbox_messages WHERE recipient LIKE 'late%'"
    )
    assert late[0][0] == 0


async def test_the_form_and_error_report_limits_are_settings(
    make_settings: SettingsFactory,
) -> None:
    """The public forms' (and orders') 10 per 10 minutes and the error reports' 30 a minute
    were constants: ``FORM_RATE_LIMIT`` and ``CLIENT_ERROR_RATE_LIMIT`` were ignored."""
    settings = make_settings(FORM_RATE_LIMIT="2", CLIENT_ERROR_RATE_LIMIT="1")
    async with AsyncTestClient(make_app(settings)) as client:
        forms = [
            (await client.post("/api/v1/waitlist", json={"email": f"w{n}@example.com"})).status_code
            for n in range(3)
        ]
        orders = [
            (
                await client.post(
                    "/api/v1/orders",
                    json={"name": "Ada", "email": f"o{n}@example.com", "plan_type": "starter"},
                )
            ).status_code
            for n in range(3)
        ]
        reports = [
            (await client.post("/api/v1/client_errors", json={"message": "boom"})).status_code
            for _ in range(2)
        ]
    assert forms == [201, 201, 429]
    assert orders == [201, 201, 429]
    assert reports == [202, 429]


async def test_the_openapi_document_names_the_new_limits(settings: Settings) -> None:
    async with AsyncTestClient(make_app(settings)) as client:
        document = (await client.get("/api/v1/openapi.json")).json()
    analytics = document["paths"]["/api/v1/analytics/events"]["post"]
    assert {"413", "429"} <= set(analytics["responses"])
    assert "ANALYTICS_RATE_LIMIT" in analytics["description"]
    for path in ("/api/v1/auth/register", "/api/v1/users", "/api/v1/auth/register-from-order"):
        operation = document["paths"][path]["post"]
        assert "429" in operation["responses"], path
        assert "REGISTRATION_RATE_LIMIT" in operation["description"]


# --- refused console requests ------------------------------------------------------------------


async def test_a_flood_of_refusals_writes_a_bounded_number_of_audit_rows(
    settings: Settings,
) -> None:
    """150 refused console requests in 0.8 s wrote 150 ``access.denied`` rows: the trail could
    be flooded by any signed-in user. Expected: the first ``DENIAL_AUDIT_LIMIT`` (default 20) a
    minute as rows, then one ``access.denied.suppressed`` row each time the count doubles (at
    40, 80 and 160 refusals), which says how many went unrecorded; the burst alert is raised."""
    async with AsyncTestClient(make_app(settings)) as client:
        headers = await sign_up(client)
        codes = {
            (await client.get("/api/v1/admin/users", headers=headers)).status_code
            for _ in range(160)
        }
    assert codes == {403}
    assert (
        await count(settings, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'")
        == 20
    )
    summaries = await fetch(
        settings,
        "SELECT details FROM audit_events WHERE action = 'access.denied.suppressed'",
    )
    seen = sorted(
        (row[0] if isinstance(row[0], dict) else msgspec.json.decode(row[0]))["counted"]
        for row in summaries
    )
    assert seen == [40, 80, 160]
    alerts = await fetch(settings, "SELECT rule FROM security_alerts")
    assert [row[0] for row in alerts] == ["forbidden_burst"]


async def test_refusals_of_many_accounts_from_one_address_are_capped_too(
    make_settings: SettingsFactory,
) -> None:
    """The cap counts the client address as well as the account: fresh accounts from one
    address do not each open a new allowance of rows."""
    settings = make_settings(DENIAL_AUDIT_LIMIT="10", REGISTRATION_RATE_LIMIT="50")
    async with AsyncTestClient(make_app(settings)) as client:
        for n in range(4):
            headers = await sign_up(client, f"d{n}@example.com")
            for _ in range(5):
                answer = await client.get("/api/v1/admin/users", headers=headers)
                assert answer.status_code == 403
    assert (
        await count(settings, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'")
        == 10
    )
    summaries = await fetch(
        settings, "SELECT count(*) FROM audit_events WHERE action = 'access.denied.suppressed'"
    )
    assert summaries[0][0] == 1  # at 20 refusals from the address


@pytest.mark.parametrize("value", ["9", "10001"])
def test_the_denial_audit_limit_keeps_the_burst_alerts_row(
    make_settings: SettingsFactory, value: str
) -> None:
    from orbsurv.main.settings import SettingsError

    with pytest.raises(SettingsError, match="DENIAL_AUDIT_LIMIT"):
        make_settings(DENIAL_AUDIT_LIMIT=value)


# --- /metrics -------------------------------------------------------------------------------------


async def test_metrics_with_a_token_need_it(make_settings: SettingsFactory) -> None:
    """/metrics answered anyone. With ``METRICS_TOKEN`` it needs ``Authorization: Bearer``."""
    token = "m" * 8 + "Xq3vT9pL2sR7wK4nB6yD1fH8jZ5cV0aE"
    settings = make_settings(METRICS_TOKEN=token)
    async with AsyncTestClient(make_app(settings)) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers=bearer(token[:-1] + "x"))
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {token}"})
        right = await client.get("/metrics", headers=bearer(token))
    for answer in (anonymous, wrong, basic):
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["code"] == "invalid_token"
        assert "orbsurv_http_requests" not in answer.text
    assert right.status_code == 200
    assert "orbsurv_http_requests" in right.text


async def test_metrics_with_a_port_of_their_own_are_not_on_the_api(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(METRICS_PORT="18599")
    async with AsyncTestClient(make_app(settings)) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 404


async def test_metrics_stay_open_in_development_without_settings(settings: Settings) -> None:
    async with AsyncTestClient(make_app(settings)) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert "orbsurv_http_requests" in answer.text


async def test_metrics_in_production_need_a_token_or_a_port(
    make_settings: SettingsFactory,
) -> None:
    """Production answered /metrics (routes, status codes, traffic) to anyone. With neither
    ``METRICS_TOKEN`` nor ``METRICS_PORT`` it is now 404: a forgotten setting hides them."""
    from tests.unit.test_settings import STRONG

    settings = make_settings(
        ENV="production", BACKEND_URL="https://api.example.com", MAIL_BACKEND="console", **STRONG
    )
    async with AsyncTestClient(make_app(settings)) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 404
    assert "orbsurv_http" not in answer.text


async def test_concurrent_refusals_still_write_exactly_the_cap(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """On PostgreSQL, 60 refusals at once: each is counted once in the cache before anything is
    written, so exactly 20 rows and one summary (at 40) whatever the interleaving. The pool's
    checkout may wait as long as the refusals take on a busy machine: this counts rows, not
    the pool's bound."""
    import asyncio

    await truncate_all(postgres_url)  # the session's database: earlier tests leave accounts
    settings = make_settings(DATABASE_URL=postgres_url, DB_POOL_TIMEOUT_SECONDS="60")
    async with AsyncTestClient(make_app(settings)) as client:
        headers = await sign_up(client)
        answers = await asyncio.gather(
            *(client.get("/api/v1/admin/users", headers=headers) for _ in range(60))
        )
    assert {answer.status_code for answer in answers} == {403}
    denied = "SELECT count(*) FROM audit_events WHERE action = 'access.denied'"
    suppressed = "SELECT count(*) FROM audit_events WHERE action = 'access.denied.suppressed'"
    assert await count(settings, denied) == 20
    assert await count(settings, suppressed) == 1
