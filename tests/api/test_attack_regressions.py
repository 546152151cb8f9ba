"""Regressions from probing the running service as an outsider, on PostgreSQL.

Each test names the request that misbehaved and the answer it should get. Numeric headers and
``Range`` are parsed by hand, so they meet bytes no JSON decoder filters: latin-1 digits such as
``²`` (``str.isdigit`` says yes, ``int`` says no) and numbers longer than Python converts.
The single-request package upload stores the bytes before it knows it may keep them, so the
quota and the clean-up on refusal are checked here with the storage and the usage rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.auth import needs_principal, permission_checks
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import (
    HasherProvider,
    WrappedHasher,
    bearer,
    fetch,
    sign_up,
    sign_up_admin,
)
from tests.api.test_packages_catalog import stored_files
from tests.api.test_races import serve
from tests.conftest import SettingsFactory, truncate_all

BASE = "/api/v1/software-packages"
DEADLINE_SECONDS = 60
Client = AsyncTestClient[Litestar]


@pytest.fixture
async def pg(make_settings: SettingsFactory, postgres_url: str) -> Settings:
    await truncate_all(postgres_url)
    return make_settings(DATABASE_URL=postgres_url)


async def usage(settings: Settings) -> list[tuple[int, int]]:
    rows = await fetch(settings, "SELECT used_bytes, reserved_bytes FROM storage_usage")
    return [(int(r[0]), int(r[1])) for r in rows]


def one_shot_fields(name: str, version: str) -> dict[str, str]:
    return {"name": name, "version": version}


# --- numeric headers with non-ASCII digits --------------------------------------------------


@pytest.mark.parametrize("name", ["Upload-Offset", "X-Upload-Offset"])
async def test_an_upload_offset_in_latin1_superscript_digits_is_400(
    pg: Settings, name: str
) -> None:
    """PATCH /uploads/{id} with ``Upload-Offset: \\xb9`` (``¹``) answered 500. (httpx's own
    ASGI transport: Litestar's test client re-encodes header bytes as UTF-8.)"""
    async with serve(make_app(pg)) as client:
        auth = await sign_up(client)
        created = await client.post(
            f"{BASE}/uploads/init",
            json={"package_name": "p", "version": "1.0.0", "file_name": "a", "size": 3},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        upload_id = created.json()["upload_id"]
        answer = await client.patch(
            f"{BASE}/uploads/{upload_id}",
            content=b"abc",
            headers=[
                *auth.items(),
                ("Content-Type", "application/offset+octet-stream"),
                (name, b"\xb9"),
            ],
        )
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "bad_header"
        assert (await fetch(pg, 'SELECT "offset" FROM upload_sessions'))[0][0] == 0


async def test_a_tus_upload_length_in_latin1_superscript_digits_is_400(pg: Settings) -> None:
    """POST /uploads (tus creation) with ``Upload-Length: \\xb2`` (``²``) answered 500."""
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("package_name", "p"), ("version", "1.0.0"), ("filename", "a"))
    )
    async with serve(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            f"{BASE}/uploads",
            headers=[
                *auth.items(),
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Length", b"\xb2"),
                ("Upload-Metadata", meta),
            ],
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_header"
        assert await fetch(pg, "SELECT id FROM upload_sessions") == []


async def test_duplicate_tus_metadata_keys_are_400(pg: Settings) -> None:
    """tus 1.0 (Upload-Metadata): "All keys MUST be unique". Two ``package_name`` keys were
    accepted and the last one silently won."""

    def pair(key: str, value: str) -> str:
        return f"{key} {base64.b64encode(value.encode()).decode()}"

    meta = ",".join(
        [pair("package_name", "one"), pair("package_name", "two"), pair("version", "1.0.0")]
    )
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            f"{BASE}/uploads",
            headers={
                **auth,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "5",
                "Upload-Metadata": meta,
            },
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "bad_metadata"
        assert await fetch(pg, "SELECT id FROM upload_sessions") == []


# --- Range with numbers longer than Python converts ------------------------------------------


@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        ("bytes=0-" + "9" * 5000, 206, "bytes 0-9/10"),  # a last byte past the end: clamped
        ("bytes=0-" + "0" * 4999 + "4", 206, "bytes 0-4/10"),  # leading zeros are still 4
        ("bytes=" + "1" * 5000 + "-", 416, "bytes */10"),  # a start past the end
        ("bytes=-" + "7" * 5000, 206, "bytes 0-9/10"),  # a suffix longer than the file
    ],
)
async def test_a_range_with_thousands_of_digits_is_answered_not_500(
    pg: Settings, header: str, status: int, content_range: str
) -> None:
    """GET .../download with ``Range: bytes=0-999...`` (5000 digits) answered 500: ``int()``
    refuses strings past 4300 digits. RFC 9110 §14.1.2: a last position past the end is the end;
    a first position past the end is unsatisfiable (416)."""
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        published = await client.post(
            BASE,
            data=one_shot_fields("ranged", "1.0.0"),
            files={"file": ("r.bin", b"0123456789", "application/octet-stream")},
            headers=auth,
        )
        assert published.status_code == 201, published.text
        ids = published.json()
        url = f"{BASE}/{ids['package_id']}/versions/{ids['version_id']}/download"
        answer = await client.get(url, headers={**auth, "Range": header})
        assert answer.status_code == status, answer.text[:200]
        assert answer.headers["content-range"] == content_range


# --- the single-request upload and the quota ------------------------------------------------


async def test_a_single_request_upload_reserves_its_size_once(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """POST /software-packages (multipart) reserved the file's size twice and settled it once:
    with a 1000-byte quota, 400 stored bytes left 200 free (used 400, reserved 400 for ever)
    and a second 400-byte version was refused with 413 `quota_exceeded`."""
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url, USER_QUOTA_BYTES="1000")
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client)
        for version, seed in (("1.0.0", b"a"), ("1.0.1", b"b")):
            answer = await client.post(
                BASE,
                data=one_shot_fields("quota", version),
                files={"file": ("q.bin", seed * 400, "application/octet-stream")},
                headers=auth,
            )
            assert answer.status_code == 201, answer.text
        assert await usage(settings) == [(800, 0)]


async def test_a_single_request_upload_over_the_quota_keeps_no_bytes(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """POST /software-packages past the quota answered 413 but left the streamed object in
    storage (the bytes are stored before the reservation is tried)."""
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url, USER_QUOTA_BYTES="100")
    async with AsyncTestClient(make_app(settings)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            BASE,
            data=one_shot_fields("big", "1.0.0"),
            files={"file": ("b.bin", b"x" * 200, "application/octet-stream")},
            headers=auth,
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["code"] == "quota_exceeded"
        assert stored_files(settings) == []
        assert await fetch(settings, "SELECT id FROM upload_sessions") == []
        assert await usage(settings) in ([], [(0, 0)])


def _multipart(boundary: str, fields: dict[str, str], file_name: str) -> bytes:
    """The fields and the head of a ``file`` part; its bytes and the closing boundary follow."""
    disposition = '--{}\r\nContent-Disposition: form-data; name="{}"'
    head = b"".join(
        (disposition.format(boundary, name) + f"\r\n\r\n{value}\r\n").encode()
        for name, value in fields.items()
    )
    part = disposition.format(boundary, "file") + f'; filename="{file_name}"\r\n'
    return head + (part + "Content-Type: application/octet-stream\r\n\r\n").encode()


async def test_a_single_request_upload_that_loses_the_version_race_gives_its_reservation_back(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """Two POST /software-packages of the same name and version at once: the later one passes
    the early duplicate check, stores its bytes, reserves its size and then meets the unique
    version at publication (409). Its reservation stayed behind for ever."""
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url)
    app = make_app(settings)
    boundary = "raceboundary"
    asked_for_more = asyncio.Event()
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield _multipart(boundary, one_shot_fields("raced", "1.0.0"), "a.bin") + b"A" * 300
        asked_for_more.set()  # the server streams the file: the duplicate check is behind it
        await release.wait()
        yield f"\r\n--{boundary}--\r\n".encode()

    async with serve(app) as client:
        auth = await sign_up(client)
        slow = asyncio.create_task(
            client.post(
                BASE,
                content=slow_body(),
                headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        )
        await asyncio.wait_for(asked_for_more.wait(), DEADLINE_SECONDS)
        fast = await client.post(
            BASE,
            data=one_shot_fields("raced", "1.0.0"),
            files={"file": ("b.bin", b"B" * 200, "application/octet-stream")},
            headers=auth,
        )
        assert fast.status_code == 201, fast.text
        release.set()
        late: httpx.Response = await asyncio.wait_for(slow, DEADLINE_SECONDS)
        assert late.status_code == 409, late.text
        assert late.json()["code"] == "version_exists"
    assert await usage(settings) == [(200, 0)]
    assert await fetch(settings, "SELECT id FROM upload_sessions") == []
    assert [p.stat().st_size for p in stored_files(settings)] == [200]


# --- the guessing budget under concurrency --------------------------------------------------

WRONG = "not the password at all"
ACCOUNT_FAILURE_LIMIT = 5  # IdentityPolicy's defaults
IP_FAILURE_LIMIT = 20
PARALLEL_GUESSES = 8


class CountingHasher(WrappedHasher):
    """argon2, counting the verifications of ``WRONG``; each one waits (up to a deadline) until
    more verifications than the budget allows have started, so requests that were let through
    overlap for certain. A service that spends the budget before verifying never lets that many
    start: the waits then end at their deadline and the test goes on."""

    def __init__(self, budget: int = ACCOUNT_FAILURE_LIMIT) -> None:
        super().__init__()
        self.budget = budget
        self.started = 0
        self.over_budget = asyncio.Event()

    async def verify(self, password_hash: str, password: str) -> bool:
        if password == WRONG:
            self.started += 1
            if self.started > self.budget:
                self.over_budget.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.over_budget.wait(), 5)
        return await self.inner.verify(password_hash, password)


async def test_concurrent_wrong_logins_get_no_more_password_checks_than_the_budget(
    pg: Settings,
) -> None:
    """POST /auth/login with a wrong password, 16 at once against the running service: 9
    answered 401 (each one a password checked) before the lock answered 429, though 5 failures
    lock the account, so parallel guessing multiplies the budget. Here 8 at once in-process.
    Expected: at most 5 checks; the others 429 ``too_many_attempts``."""
    hasher = CountingHasher()
    app = make_app(pg, HasherProvider(hasher))
    async with serve(app) as client:
        await sign_up(client)
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login", json={"email": "ada@example.com", "password": WRONG}
                )
                for _ in range(PARALLEL_GUESSES)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert hasher.started <= ACCOUNT_FAILURE_LIMIT, statuses
    assert statuses.count(401) <= ACCOUNT_FAILURE_LIMIT
    assert statuses.count(429) >= PARALLEL_GUESSES - ACCOUNT_FAILURE_LIMIT


# --- file names that display differently from what they are ------------------------------


@pytest.mark.parametrize(
    "name", ["invoice\u202efdp.exe", "photo\u2067gpj.exe\u2069", "a\u200fb.zip"]
)
async def test_a_project_file_name_with_bidi_controls_is_refused(pg: Settings, name: str) -> None:
    """POST /projects with the file name ``invoice\\u202efdp.exe`` (RIGHT-TO-LEFT OVERRIDE) was
    stored and offered back in ``Content-Disposition: ...; filename*=UTF-8''invoice%E2%80%AEfdp
    .exe``, which a browser shows as ``invoiceexe.pdf`` (Unicode TR #36, "Bidirectional Text
    Spoofing"). Package uploads already drop such characters; a project refuses the name (422
    on ``file``, names are never rewritten) and stores nothing."""
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            "/api/v1/projects",
            data={"name": "p", "description": "d", "is_public": "false"},
            files={"file": (name, b"MZ", "application/octet-stream")},
            headers=auth,
        )
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["file"]
        assert await fetch(pg, "SELECT id FROM projects") == []
        assert [p for p in Path(pg.upload_root).rglob("*") if p.is_file()] == []


# --- every error names a stable code ---------------------------------------------------------


async def test_an_unsupported_tus_version_is_412_with_a_stable_code(pg: Settings) -> None:
    """PATCH /uploads/{id} with ``Tus-Resumable: 0.1`` answered 412 with ``code: "error"``, the
    fallback for a status without a code of its own (API.md: ``code`` is stable snake_case
    naming the problem)."""
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.patch(
            f"{BASE}/uploads/some-upload",
            content=b"x",
            headers={**auth, "Tus-Resumable": "0.1", "Upload-Offset": "0"},
        )
        assert answer.status_code == 412, answer.text
        assert answer.headers["tus-version"] == "1.0.0"
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "precondition_failed"


# --- instants and cursors that cannot be stored or compared ---------------------------------


def forged_cursor(payload: list[Any]) -> str:
    """A keyset cursor as the service encodes them (base64url of ``[instant, id]``)."""
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_CURSORS = {
    "nul-id": ["2026-01-01T00:00:00+00:00", "a\u0000b"],
    "surrogate-id": ["2026-01-01T00:00:00+00:00", "\ud800"],
    "year-0-in-utc": ["0001-01-01T00:00:00+01:00", "x"],
    "year-10000-in-utc": ["9999-12-31T23:59:59-01:00", "x"],
}


@pytest.mark.parametrize("payload", FORGED_CURSORS.values(), ids=FORGED_CURSORS.keys())
async def test_a_forged_cursor_is_422_not_500(pg: Settings, payload: list[Any]) -> None:
    """GET /support-chat/conversations?cursor=<base64 of ["2026-...", "a\\u0000b"]> answered 500
    (PostgreSQL refuses NUL, asyncpg a lone surrogate), and so did an instant whose offset moves
    it out of years 1..9999 in UTC (``OverflowError`` binding it). Every keyset stream shares
    the decoder: the support chat for any user, the console's audit trail and alerts."""
    cursor = forged_cursor(payload)
    async with AsyncTestClient(make_app(pg)) as client:
        user = await sign_up(client)
        admin = await sign_up_admin(client, pg)
        asked = await client.post(
            "/api/v1/support-chat/messages", json={"message": "hello"}, headers=user
        )
        assert asked.status_code == 201, asked.text
        conversation = asked.json()["conversation_id"]
        for path, params, auth in (
            ("/api/v1/support-chat/conversations", {}, user),
            ("/api/v1/support-chat/messages", {"conversation_id": conversation}, user),
            ("/api/v1/admin/logs", {}, admin),
            ("/api/v1/admin/alerts", {}, admin),
        ):
            answer = await client.get(path, params={**params, "cursor": cursor}, headers=auth)
            assert answer.status_code == 422, (path, answer.text)
            assert [e["field"] for e in answer.json()["errors"]] == ["cursor"], path


OUT_OF_CALENDAR_IN_UTC = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("instant", OUT_OF_CALENDAR_IN_UTC)
async def test_an_event_time_outside_the_calendar_in_utc_is_422(pg: Settings, instant: str) -> None:
    """POST /analytics/events (anonymous) with ``occurred_at: "0001-01-01T00:00:00+14:00"``
    answered 500: a valid RFC 3339 instant that is in year 0 once moved to UTC."""
    async with AsyncTestClient(make_app(pg)) as client:
        one = await client.post(
            "/api/v1/analytics/events",
            json={"event_type": "page_view", "action": "view", "occurred_at": instant},
        )
        assert one.status_code == 422, one.text
        assert [e["field"] for e in one.json()["errors"]] == ["occurred_at"]
        batch = await client.post(
            "/api/v1/analytics/events",
            json={"events": [{"event_type": "page_view", "action": "v", "occurred_at": instant}]},
        )
        assert batch.status_code == 422, batch.text
        assert [e["field"] for e in batch.json()["errors"]] == ["events[0].occurred_at"]
    assert await fetch(pg, "SELECT id FROM analytics_events") == []


@pytest.mark.parametrize("instant", OUT_OF_CALENDAR_IN_UTC)
async def test_an_audit_filter_outside_the_calendar_in_utc_is_422(
    pg: Settings, instant: str
) -> None:
    """GET /admin/logs?since=0001-01-01T00:00:00%2B14:00 answered 500."""
    async with AsyncTestClient(make_app(pg)) as client:
        admin = await sign_up_admin(client, pg)
        for name in ("since", "until"):
            answer = await client.get("/api/v1/admin/logs", params={name: instant}, headers=admin)
            assert answer.status_code == 422, answer.text
            assert [e["field"] for e in answer.json()["errors"]] == [name]


async def test_concurrent_wrong_current_passwords_get_no_more_checks_than_the_budget(
    pg: Settings,
) -> None:
    """PATCH /account/password with a wrong ``current_password``, 8 at once in one session:
    the portal's re-authentication peeked at the same budget before checking, so every one of
    them was checked. Expected: at most 5 checks, the others 429 ``too_many_attempts``."""
    hasher = CountingHasher()
    app = make_app(pg, HasherProvider(hasher))
    async with serve(app) as client:
        auth = await sign_up(client)
        answers = await asyncio.gather(
            *(
                client.patch(
                    "/api/v1/account/password",
                    json={"current_password": WRONG, "new_password": "a new long passphrase"},
                    headers=auth,
                )
                for _ in range(PARALLEL_GUESSES)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert hasher.started <= ACCOUNT_FAILURE_LIMIT, statuses
    assert statuses.count(400) <= ACCOUNT_FAILURE_LIMIT
    assert statuses.count(429) >= PARALLEL_GUESSES - ACCOUNT_FAILURE_LIMIT


async def test_concurrent_wrong_logins_from_one_address_get_no_more_checks_than_its_budget(
    pg: Settings,
) -> None:
    """POST /auth/login with a wrong password at 25 different accounts at once from one client
    address: each is within its account's budget, and the address's budget is 20 failures a
    minute, yet all 25 passwords are checked. Expected: at most 20 checks; the others 429."""
    hasher = CountingHasher(budget=IP_FAILURE_LIMIT)
    # Each let-through check is held for up to 5 s (see CountingHasher) with its request's
    # connection: a pool as large as the guesses keeps the test about the budget, not the pool.
    app = make_app(msgspec.structs.replace(pg, db_pool_size=30), HasherProvider(hasher))
    guesses = IP_FAILURE_LIMIT + 5
    async with serve(app) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login",
                    json={"email": f"nobody{n}@example.com", "password": WRONG},
                )
                for n in range(guesses)
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert hasher.started <= IP_FAILURE_LIMIT, statuses
    assert statuses.count(429) >= guesses - IP_FAILURE_LIMIT


# --- content negotiation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream;q=0", False),
        ("text/event-stream; q=0.0, application/json", False),
        ("text/event-stream;q=x", False),
        ("text/event-stream", True),
        ("text/event-stream;q=0.5, application/json;q=0.1", True),
    ],
)
async def test_a_stream_refused_with_q_0_is_not_sent(
    pg: Settings, accept: str, streams: bool
) -> None:
    """POST /support-chat/messages with ``Accept: text/event-stream;q=0`` answered with the
    event stream, though RFC 9110 §12.5.1 reads ``q=0`` as "not acceptable" (the check was a
    substring test). Expected: the JSON answer (201)."""
    async with AsyncTestClient(make_app(pg)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            "/api/v1/support-chat/messages",
            json={"message": "how do uploads work"},
            headers={**auth, "Accept": accept},
        )
        if streams:
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/event-stream")
        else:
            assert answer.status_code == 201, answer.text
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["assistant_reply"]


async def test_a_single_request_upload_stops_reading_once_past_the_free_quota(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """POST /software-packages with a 1000-byte quota and a 4 MiB file: the whole file was
    streamed to storage (up to MAX_UPLOAD_BYTES, 5 GiB by default) before the quota was
    consulted, so a user with a full quota could still make the server write gigabytes per
    request. Expected: the stream is cut once it passes the free quota (413 quota_exceeded),
    as MAX_UPLOAD_BYTES cuts it."""
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url, USER_QUOTA_BYTES="1000")
    boundary = "quotaboundary"
    head = _multipart(boundary, one_shot_fields("capped", "1.0.0"), "c.bin") + b"C" * 2000
    rest = [b"C" * (1024 * 1024)] * 4
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for chunk in [head, *rest, f"\r\n--{boundary}--\r\n".encode()]:
            sent.append(len(chunk))
            yield chunk

    async with serve(make_app(settings)) as client:
        auth = await sign_up(client)
        answer = await client.post(
            BASE,
            content=body(),
            headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 413, answer.text
    assert answer.json()["code"] == "quota_exceeded"
    assert sum(sent) < 1024 * 1024, f"{sum(sent)} bytes were read"
    assert stored_files(settings) == []
    assert await usage(settings) in ([], [(0, 0)])


# --- per-IP budgets and IPv6 ------------------------------------------------------------------

IP_FAILURE_LIMIT = 20  # IdentityPolicy's default: failed logins per client IP per minute


async def test_one_ipv6_subnet_shares_the_per_ip_login_budget(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """POST /auth/login with a wrong password for 30 different addresses, each from another
    address of one /64 (``X-Forwarded-For: 2001:db8::1``, ``::2``, … behind a trusted proxy):
    all 30 answered 401, a password checked each time, where 20 from one IPv4 address lock at
    the 21st. A host is handed a whole /64 (RFC 6177, RFC 7421), so counting /128s gave it a
    fresh budget per request. Expected: the /64 is one client; 20 checks, then 429."""
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url, TRUSTED_PROXIES="127.0.0.1/32")
    async with serve(make_app(settings)) as client:
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/login",
                    json={"email": f"nobody{i}@example.com", "password": WRONG},
                    headers={"X-Forwarded-For": f"2001:db8:5:6::{i + 1:x}"},
                )
            ).status_code
            for i in range(IP_FAILURE_LIMIT + 5)
        ]
        other_subnet = await client.post(
            "/api/v1/auth/login",
            json={"email": "nobody@example.com", "password": WRONG},
            headers={"X-Forwarded-For": "2001:db8:5:7::1"},
        )
    assert statuses.count(401) == IP_FAILURE_LIMIT, statuses
    assert statuses[IP_FAILURE_LIMIT:] == [429] * 5, statuses
    assert other_subnet.status_code == 401, other_subnet.text


async def test_an_anonymous_console_change_is_401_before_its_body_is_judged(pg: Settings) -> None:
    """PATCH /api/v1/admin/orders/abc with ``{}`` and no credentials answered 422 ``status: is
    required``: a client that is not signed in learns how the console validates before it is
    told to sign in (with ``{"status": "cancelled"}`` the same request is 401). Expected: 401
    ``unauthenticated`` whatever the body."""
    async with AsyncTestClient(make_app(pg)) as client:
        answer = await client.patch("/api/v1/admin/orders/abc", json={})
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "unauthenticated"


def _sample_path(path: str) -> str:
    samples = {"uuid": "6f1c1c1e-0000-4000-8000-000000000000", "int": "1"}
    return re.sub(r"\{(\w+):(\w+)\}", lambda found: samples.get(found.group(2), "abc"), path)


async def test_every_change_that_needs_a_sign_in_is_401_before_its_body_is_judged(
    pg: Settings,
) -> None:
    """Every unsafe route that takes the signed-in principal, sent a body it would refuse (a
    JSON ``{}``, or ``[]``), answers 401 to no credentials and to a forged token, never 422."""
    app = make_app(pg)
    checked = []
    async with AsyncTestClient(app) as client:
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for method, (handler, _) in route.route_handler_map.items():
                if method not in {"POST", "PUT", "PATCH", "DELETE"} or not needs_principal(handler):
                    continue
                path = _sample_path(route.path)
                for headers in ({}, bearer("not.a.token")):
                    for body in ({}, []):
                        answer = await client.request(method, path, json=body, headers=headers)
                        assert answer.status_code == 401, (method, path, answer.text)
                checked.append(f"{method} {path}")
    assert len(checked) > 40, checked  # the console, the account, packages, projects, support


async def test_a_signed_in_change_with_a_bad_body_is_still_422(pg: Settings) -> None:
    async with AsyncTestClient(make_app(pg)) as client:
        headers = await sign_up(client)
        answer = await client.patch("/api/v1/account/profile", json={"name": 5}, headers=headers)
    assert answer.status_code == 422, answer.text


async def test_a_signed_in_caller_without_the_permission_is_403_before_its_body_is_judged(
    pg: Settings,
) -> None:
    """PATCH /api/v1/admin/orders/abc with ``{}`` from a signed-in plain user answered 422
    ``status: is required`` (POST /admin/send-email, POST /resources, PUT
    /admin/users/abc/storage-quota and the rest alike): the role was checked after the body, so
    a user learnt how the console validates, and the refusal was never audited as
    ``access.denied``. Every unsafe route that requires a permission now answers 403 first."""
    app = make_app(pg)
    checked = []
    async with AsyncTestClient(app) as client:
        headers = await sign_up(client)
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for method, (handler, _) in route.route_handler_map.items():
                if method not in {"POST", "PUT", "PATCH", "DELETE"} or not permission_checks(
                    handler
                ):
                    continue
                path = _sample_path(route.path)
                for body in ({}, []):
                    answer = await client.request(method, path, json=body, headers=headers)
                    assert answer.status_code == 403, (method, path, answer.text)
                    assert answer.json()["code"] in {"forbidden", "dev_session_required"}
                    checked.append(f"{method} {path}")
    assert {"PATCH /api/v1/admin/orders/abc", "POST /api/v1/resources"} <= set(checked), checked
    denials = await fetch(pg, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'")
    # Audited one row each up to the per-minute cap (the rest are counted, not rowed).
    assert denials[0][0] == min(len(checked), pg.denial_audit_limit)


# --- form bodies that are not UTF-8 -----------------------------------------------------------


async def test_a_multipart_field_that_is_not_utf8_is_400_not_500(pg: Settings) -> None:
    """POST /api/v1/waitlist as multipart/form-data with ``source`` = ``a\\xffb``: 500
    ``internal_error`` (the form parser's UnicodeDecodeError escaped). A JSON body with the same
    byte is 400 ``malformed_body``. Expected: the same 400 for the form, nothing stored."""
    boundary = "utf8boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
            "mp@example.com\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="source"\r\n\r\n'
        ).encode()
        + b"a\xffb\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    async with AsyncTestClient(make_app(pg)) as client:
        answer = await client.post(
            "/api/v1/waitlist",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "malformed_body"
    assert await fetch(pg, "SELECT email FROM waitlist_entries") == []


async def test_a_url_encoded_field_that_is_not_utf8_is_400_not_replaced(pg: Settings) -> None:
    """POST /api/v1/waitlist ``email=%FF%FE@example.com`` (form-urlencoded): 201, the bytes
    became U+FFFD and ``\\ufffd\\ufffd@example.com`` was stored and sent an acknowledgement.
    Expected: 400 ``malformed_body`` as for JSON that is not UTF-8; nothing stored."""
    async with AsyncTestClient(make_app(pg)) as client:
        answers = [
            await client.post(
                "/api/v1/waitlist",
                content=content,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            for content in (b"email=%FF%FE@example.com", b"email=ok@example.com&source=\xff")
        ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "malformed_body"
    assert await fetch(pg, "SELECT email FROM waitlist_entries") == []
    assert await fetch(pg, "SELECT recipient FROM outbox_messages") == []


async def test_a_refused_caller_with_unstorable_strings_is_4xx_not_500(pg: Settings) -> None:
    """GET /api/v1/admin/users/a%00b as a plain user answered 500: the denial was audited
    with the path (and user agent) before those strings were screened, and PostgreSQL refuses
    NUL. Expected: 422 naming the field, as for anyone else, and nothing audited for it."""
    async with AsyncTestClient(make_app(pg)) as client:
        headers = await sign_up(client)
        by_path = await client.get("/api/v1/admin/users/a%00b", headers=headers)
        by_agent = await client.get(
            "/api/v1/admin/users", headers={**headers, "User-Agent": "a\x00b"}
        )
    assert by_path.status_code == 422, by_path.text
    assert by_agent.status_code in (400, 422), by_agent.text
    denials = await fetch(pg, "SELECT count(*) FROM audit_events WHERE action = 'access.denied'")
    assert denials[0][0] == 0
