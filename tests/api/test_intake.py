"""The public forms, client errors and analytics over HTTP: rules, abuse controls, bad input."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from litestar.testing import AsyncTestClient

from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import Client, bearer, fetch, register
from tests.api.test_account import deliver, mail_to, text_of
from tests.api.test_conventions import assert_problem
from tests.conftest import SettingsFactory, SmtpServer
from tests.services import free_port

SCRIPT = "<script>alert('x')</script>"


async def rows(settings: Settings, table: str) -> list[dict[str, object]]:
    return [dict(row._mapping) for row in await fetch(settings, f"SELECT * FROM {table}")]


# --- forms -------------------------------------------------------------------------------------


async def test_waitlist_is_idempotent_per_email(client: Client, settings: Settings) -> None:
    first = await client.post(
        "/api/v1/waitlist", json={"email": " Ada@Example.com ", "source": "ad"}
    )
    again = await client.post(
        "/waitlist", data={"email": "ada@example.com", "source": "blog", "name": ""}
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json() == again.json() == {"status": "ok", "message": "You are on the waitlist."}
    [entry] = await rows(settings, "waitlist_entries")
    assert entry["email"] == "ada@example.com"
    assert entry["source"] == "blog"


@pytest.mark.parametrize(
    ("path", "body", "table"),
    [
        (
            "/contact",
            {
                "name": "Ada",
                "email": "a@example.com",
                "message": f"{SCRIPT} hello there",
                "company": "",
                "topic": "sales",
            },
            "contact_messages",
        ),
        (
            "/investor_interest",
            {"name": "Ada", "email": "a@example.com", "amount": "50000", "note": SCRIPT},
            "investor_interests",
        ),
        (
            "/pilot_request",
            {
                "name": "Ada",
                "org": "Orbital",
                "email": "a@example.com",
                "use_case": f"{SCRIPT} mapping",
            },
            "pilot_requests",
        ),
    ],
)
async def test_forms_store_text_as_given_by_json_or_form(
    client: Client, settings: Settings, path: str, body: dict[str, str], table: str
) -> None:
    as_json = await client.post(f"/api/v1{path}", json=body)
    as_form = await client.post(path, data=body)  # the root alias, form-encoded
    assert as_json.status_code == as_form.status_code == 201
    stored = await rows(settings, table)
    assert len(stored) == 2
    assert any(SCRIPT in str(value) for value in stored[0].values())  # kept as text, verbatim
    assert all(
        row.get("company", None) in (None,) for row in stored if "company" in row
    )  # "" is absent


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/contact", {"name": "A", "email": "a@example.com", "message": "hello there"}, "name"),
        ("/contact", {"name": "Ada", "email": "a@example.com", "message": "short"}, "message"),
        ("/contact", {"name": "Ada", "email": "not-an-email", "message": "hello there"}, "email"),
        (
            "/contact",
            {"name": "Ada" * 100, "email": "a@example.com", "message": "hello there"},
            "name",
        ),
        ("/contact", {"name": "Ada", "email": "a@example.com", "message": "x" * 5001}, "message"),
        (
            "/pilot_request",
            {"name": "Ada", "org": "O", "email": "a@example.com", "use_case": "mapping"},
            "org",
        ),
        (
            "/investor_interest",
            {"name": "Ada", "email": "a@example.com", "note": "n" * 5001},
            "note",
        ),
        ("/waitlist", {"email": 42}, "email"),
    ],
)
async def test_invalid_submissions_are_refused_and_not_stored(
    client: Client, settings: Settings, path: str, body: dict[str, object], field: str
) -> None:
    problem = assert_problem(
        await client.post(f"/api/v1{path}", json=body), 422, "validation_error"
    )
    assert problem["errors"][0]["field"] == field
    for table in ("contact_messages", "pilot_requests", "investor_interests", "waitlist_entries"):
        assert await rows(settings, table) == []


async def test_the_honeypot_discards_bots_quietly(client: Client, settings: Settings) -> None:
    bot = await client.post(
        "/api/v1/waitlist", json={"email": "bot@example.com", "website": "http://spam.example"}
    )
    human = await client.post(
        "/api/v1/waitlist", json={"email": "human@example.com", "website": ""}
    )
    assert bot.status_code == human.status_code == 201
    assert bot.json() == human.json()
    assert [row["email"] for row in await rows(settings, "waitlist_entries")] == [
        "human@example.com"
    ]


async def test_each_form_has_its_own_bucket(client: Client) -> None:
    for n in range(10):
        assert (
            await client.post("/api/v1/waitlist", json={"email": f"w{n}@example.com"})
        ).status_code == 201
    flooded = await client.post("/api/v1/waitlist", json={"email": "late@example.com"})
    assert_problem(flooded, 429, "rate_limited")
    assert 0 < int(flooded.headers["retry-after"]) <= 600
    other = await client.post(
        "/api/v1/contact",
        json={"name": "Ada", "email": "a@example.com", "message": "still welcome here"},
    )
    assert other.status_code == 201


# --- acknowledgements --------------------------------------------------------------------------


async def test_one_acknowledgement_a_day_echoing_nothing(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        SMTP_HOST=smtp_server.host, SMTP_PORT=str(smtp_server.port), SMTP_TLS="plain"
    )
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        body = {
            "name": "Ada Attacker",
            "email": "ada@example.com",
            "message": f"{SCRIPT} visit http://evil.example",
        }
        await client.post("/api/v1/contact", json=body)
        await client.post(
            "/api/v1/waitlist", json={"email": "ada@example.com", "name": "Ada Attacker"}
        )
        await deliver(app)
    [ack] = mail_to(smtp_server, "ada@example.com")
    text = text_of(ack)
    assert "received your message" in text
    for echoed in ("Ada Attacker", "evil.example", "alert"):
        assert echoed not in ack.as_string()


# --- captcha -----------------------------------------------------------------------------------


@pytest.fixture
def captcha_server() -> Iterator[str]:
    class Verify(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            form = parse_qs(self.rfile.read(length).decode())
            ok = form.get("secret") == ["s3cret"] and form.get("response") == ["human"]
            payload = json.dumps({"success": ok}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Verify)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    server.shutdown()


async def test_captcha_when_configured(make_settings: SettingsFactory, captcha_server: str) -> None:
    app = make_app(make_settings(CAPTCHA_SECRET_KEY="s3cret", CAPTCHA_VERIFY_URL=captcha_server))
    async with AsyncTestClient(app) as client:
        missing = await client.post("/api/v1/waitlist", json={"email": "a@example.com"})
        wrong = await client.post(
            "/api/v1/waitlist", json={"email": "a@example.com", "captcha_token": "robot"}
        )
        camel = await client.post(
            "/api/v1/waitlist", json={"email": "a@example.com", "captchaToken": "human"}
        )
        snake = await client.post(
            "/api/v1/waitlist", data={"email": "b@example.com", "captcha_token": "human"}
        )
    assert_problem(missing, 403, "captcha_failed")
    assert_problem(wrong, 403, "captcha_failed")
    assert camel.status_code == snake.status_code == 201


async def test_captcha_fails_closed_when_the_verifier_is_down(
    make_settings: SettingsFactory,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/siteverify"
    app = make_app(make_settings(CAPTCHA_SECRET_KEY="s3cret", CAPTCHA_VERIFY_URL=dead))
    async with AsyncTestClient(app) as client:
        response = await client.post(
            "/api/v1/waitlist", json={"email": "a@example.com", "captchaToken": "human"}
        )
    assert_problem(response, 403, "captcha_failed")


# --- client errors -----------------------------------------------------------------------------


async def test_client_errors_are_grouped(client: Client, settings: Settings) -> None:
    report = {
        "message": "TypeError: boom",
        "stack": "at f (app.js:1:1)\nat g (app.js:9:9)",
        "url": "https://orbsurv.example/x",
        "line": 1,
        "column": 1,
    }
    for _ in range(5):
        assert (await client.post("/client_errors", json=report)).status_code == 202
    other = {**report, "stack": "at h (app.js:2:2)"}
    await client.post("/api/v1/client_errors", json=other)
    stored = await rows(settings, "client_errors")
    assert sorted(int(str(row["count"])) for row in stored) == [1, 5]


@pytest.mark.parametrize(
    "body",
    [
        {"message": ""},
        {"message": "x" * 2001},
        {"message": "ok", "stack": "s" * 8001},
        {"message": "ok", "line": -1},
        {"message": "ok", "line": "ten"},
        {"stack": "only a stack"},
    ],
)
async def test_bad_client_error_reports(
    client: Client, settings: Settings, body: dict[str, object]
) -> None:
    assert_problem(await client.post("/api/v1/client_errors", json=body), 422, "validation_error")
    assert await rows(settings, "client_errors") == []


async def test_client_errors_have_their_own_limit(client: Client) -> None:
    for n in range(30):
        await client.post("/api/v1/client_errors", json={"message": f"error {n}"})
    assert_problem(
        await client.post("/api/v1/client_errors", json={"message": "one more"}),
        429,
        "rate_limited",
    )
    assert (
        await client.post("/api/v1/waitlist", json={"email": "still@example.com"})
    ).status_code == 201


# --- analytics ---------------------------------------------------------------------------------


async def test_single_events_and_batches(client: Client, settings: Settings) -> None:
    one = await client.post(
        "/api/v1/analytics/events",
        json={"event_type": "cookie_consent", "action": "accepted", "client_id": "c1"},
    )
    batch = await client.post(
        "/api/v1/analytics/events",
        json={
            "events": [
                {
                    "event_type": "page_view",
                    "action": "view",
                    "page": "/",
                    "metadata": {"ref": "x", "n": 1},
                }
            ]
            * 50
        },
    )
    assert one.json() == {"accepted": 1}
    assert batch.json() == {"accepted": 50}
    stored = await rows(settings, "analytics_events")
    assert len(stored) == 51
    assert all(row["request_id"] for row in stored)


async def test_signed_in_events_carry_the_actor(client: Client, settings: Settings) -> None:
    pair = await register(client)
    client.cookies.clear()
    await client.post(
        "/api/v1/analytics/events",
        json={"event_type": "cookie_consent", "action": "declined"},
        headers=bearer(pair["access_token"]),
    )
    stale = await client.post(
        "/api/v1/analytics/events",
        json={"event_type": "page_view", "action": "view"},
        headers=bearer("not.a.token"),
    )
    assert stale.status_code == 202  # bad credentials: recorded as anonymous
    actors = sorted(str(row["actor_user_id"]) for row in await rows(settings, "analytics_events"))
    assert actors == sorted([pair["user"]["id"], "None"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"events": [{"event_type": "page_view", "action": "view"}] * 51}, 422),
        (
            {
                "event_type": "page_view",
                "action": "view",
                "metadata": {f"k{n}": n for n in range(1000)},
            },
            422,
        ),
        ({"event_type": "page_view", "action": "view", "metadata": {"big": "v" * 600}}, 422),
        ({"event_type": "page_view", "action": "view", "metadata": {"big": "v" * 1_100_000}}, 413),
        ({"event_type": "page_view", "action": "view", "metadata": {"nested": {"a": 1}}}, 422),
        ({"event_type": "cookie_consent", "action": "maybe"}, 422),
        ({"event_type": "purchase", "action": "buy"}, 422),
        ({"events": []}, 422),
        (
            {
                "events": [
                    {"event_type": "page_view", "action": "view"},
                    {"event_type": "oops", "action": "x"},
                ]
            },
            422,
        ),
        ([1, 2, 3], 422),
    ],
)
async def test_bad_events_write_nothing(
    client: Client, settings: Settings, body: object, status: int
) -> None:
    response = await client.post("/api/v1/analytics/events", json=body)
    assert response.status_code == status, response.text
    assert await rows(settings, "analytics_events") == []


async def test_analytics_media_types(client: Client) -> None:
    assert_problem(
        await client.post(
            "/api/v1/analytics/events", content=b"{", headers={"Content-Type": "application/json"}
        ),
        400,
        "malformed_body",
    )
    assert_problem(
        await client.post("/api/v1/analytics/events", data={"event_type": "page_view"}),
        415,
        "unsupported_media_type",
    )
