"""SqlLeadRepository and SqlAnalyticsStore on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.leads import SqlAnalyticsStore, SqlLeadRepository
from orbsurv.domain.analytics import AnalyticsEvent, EventType
from orbsurv.domain.leads import ClientError, Form, Lead, Submitter

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)


def by(at: datetime = T0) -> Submitter:
    return Submitter(ip="198.51.100.1", user_agent="pytest", at=at)


async def test_every_form_submission_is_kept_and_waitlist_sign_ups_are_refused(
    engine: AsyncEngine,
) -> None:
    message = {"name": "Ada", "message": "hello there!"}
    async with engine.connect() as conn:
        repo = SqlLeadRepository(conn)
        await repo.add(Lead(Form.CONTACT, "a@example.com", message), by())
        await repo.add(Lead(Form.CONTACT, "a@example.com", message), by(T0 + timedelta(minutes=1)))
        with pytest.raises(ValueError, match="Waitlist port"):
            await repo.add(Lead(Form.WAITLIST, "a@example.com", {"source": "ad"}), by())
        await conn.commit()
        assert len((await repo.page("contact", None, 10)).items) == 2
        assert (await repo.page("waitlist", None, 10)).items == []


async def test_client_errors_group_by_fingerprint(engine: AsyncEngine) -> None:
    crash = ClientError(
        message="TypeError: x is undefined", stack="at f (app.js:1:1)\nat g (app.js:2:2)"
    )
    same_first_frame = ClientError(
        message=crash.message, stack="at f (app.js:1:1)\nat other (x.js:9:9)"
    )
    different = ClientError(message=crash.message, stack="at h (app.js:3:3)")
    async with engine.connect() as conn:
        repo = SqlLeadRepository(conn)
        for n, error in enumerate([crash, same_first_frame, crash, different]):
            await repo.record_error(error, by(T0 + timedelta(seconds=n)))
        await conn.commit()
        rows = (await repo.page("client_errors", None, 10)).items
    assert sorted(row["count"] for row in rows) == [1, 3]  # two rows, not four


async def test_acknowledgements_once_a_day(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        repo = SqlLeadRepository(conn)
        day = 24 * 3600
        assert await repo.claim_acknowledgement("a@example.com", T0, day)
        assert not await repo.claim_acknowledgement("a@example.com", T0 + timedelta(hours=23), day)
        assert await repo.claim_acknowledgement("a@example.com", T0 + timedelta(hours=24), day)
        assert await repo.claim_acknowledgement("b@example.com", T0, day)
        await conn.commit()


async def test_keyset_pages_and_counts(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        repo = SqlLeadRepository(conn)
        for n in range(7):
            lead = Lead(
                Form.CONTACT, f"c{n}@example.com", {"name": f"N{n}", "message": "hello there!"}
            )
            await repo.add(lead, by(T0 + timedelta(seconds=n // 2)))
        await conn.commit()
        seen, cursor = [], None
        while True:
            page = await repo.page("contact", cursor, 3)
            seen += [item["email"] for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 7
        assert seen[0] == "c6@example.com"
        assert await repo.count("contact") == 7


async def test_consent_is_queryable_by_client_and_by_user(engine: AsyncEngine) -> None:
    events = [
        AnalyticsEvent(EventType.COOKIE_CONSENT, "accepted", client_id="c1"),
        AnalyticsEvent(EventType.PAGE_VIEW, "view", client_id="c1", metadata={"path": "/"}),
    ]
    async with engine.connect() as conn:
        store = SqlAnalyticsStore(conn)
        common = {"ip": "203.0.113.1", "user_agent": "ua", "request_id": "r"}
        await store.append(events, actor_user_id=None, received_at=T0, **common)
        later = [AnalyticsEvent(EventType.COOKIE_CONSENT, "declined", client_id="c1")]
        await store.append(
            later, actor_user_id="user-1", received_at=T0 + timedelta(minutes=1), **common
        )
        await conn.commit()
        by_client = await store.consent(client_id="c1", user_id=None, cursor=None, limit=10)
        by_user = await store.consent(client_id=None, user_id="user-1", cursor=None, limit=10)
        assert [e["action"] for e in by_client.items] == ["declined", "accepted"]
        assert [e["action"] for e in by_user.items] == ["declined"]
        assert by_client.next_cursor is None
        first = await store.consent(client_id="c1", user_id=None, cursor=None, limit=1)
        assert [e["action"] for e in first.items] == ["declined"]
        assert first.next_cursor is not None
        rest = await store.consent(client_id="c1", user_id=None, cursor=first.next_cursor, limit=1)
        assert [e["action"] for e in rest.items] == ["accepted"]
        assert rest.next_cursor is None
        assert await SqlLeadRepository(conn).count("cookie_consent") == 2
