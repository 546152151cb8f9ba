"""Waitlist sign-ups written by group commit.

A sign-up written in a transaction of its own costs five round trips (BEGIN, the upsert, the
acknowledgement claim, the outbox row, COMMIT) and a WAL flush. Here the sign-ups that arrive
while a transaction is in flight wait for the next one, and that one writes them all at once
(PostgreSQL: one statement over arrays; SQLite: three multi-row ``INSERT … ON CONFLICT …
RETURNING``; a repeat's newer source one ``UPDATE`` more), so the cost per sign-up falls as load
rises. There is no timer: a lone sign-up is written at once.

Each caller still returns only after the transaction holding its row committed (0 lost). A
group never holds one address twice (a later duplicate waits for the next group), so
``ON CONFLICT`` never meets the same row twice in one statement and a repeat is told apart
from a new address exactly as one request at a time would. When a group's transaction fails,
its sign-ups are retried one by one, so one bad row fails only its own request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.batching import Batcher
from orbsurv.adapters.persistence.leads import CLAIM_ACKNOWLEDGEMENT
from orbsurv.adapters.persistence.outbox import ENQUEUE, PENDING, outbox_row
from orbsurv.adapters.persistence.tables import waitlist_entries
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.leads import Lead, Submitter

# Sign-ups per transaction; the rest wait for the next one. One transaction is in flight at a
# time (SQLite has one writer anyway): the sign-ups that arrive during a commit's WAL flush form
# the next group, so groups grow with load. A second transaction in flight halved the groups and
# cost more CPU per sign-up, and the worker runs out of CPU long before PostgreSQL does.
MAX_GROUP = 256

# SQLite's join (PostgreSQL's is one statement, below), built once per dialect.
_INSERT_NEW = {
    name: dialect.insert(waitlist_entries)
    .on_conflict_do_nothing(index_elements=["email"])
    .returning(waitlist_entries.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# A repeat records its newer source and name; an absent one keeps the stored value.
_REPEAT = (
    waitlist_entries.update()
    .where(waitlist_entries.c.email == sa.bindparam("repeat_email"))
    .values(
        updated_at=sa.bindparam("repeat_at"),
        source=sa.func.coalesce(sa.bindparam("repeat_source"), waitlist_entries.c.source),
        name=sa.func.coalesce(sa.bindparam("repeat_name"), waitlist_entries.c.name),
    )
)


@dataclass(frozen=True, slots=True)
class _SignUp:
    signup: Lead
    by: Submitter
    acknowledgement: OutgoingEmail
    every_seconds: int


def _fits(item: _SignUp, others: list[_SignUp]) -> bool:
    """An address at most once in the groups being written, and one acknowledgement period
    for them all (the claim's cut-off is shared by a group)."""
    return all(
        other.signup.email != item.signup.email and other.every_seconds == item.every_seconds
        for other in others
    )


class GroupCommitWaitlist:
    """The ``Waitlist`` port on SQL (PostgreSQL or SQLite), one transaction per group of
    concurrent sign-ups. Create it once per process; ``close()`` waits for the groups taken."""

    def __init__(self, engine: AsyncEngine, *, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._groups: Batcher[_SignUp, bool] = Batcher(
            self._settle,
            max_batch=max_group,
            name="waitlist-group-commit",
            fits=_fits,
        )

    async def join(
        self,
        signup: Lead,
        by: Submitter,
        *,
        acknowledgement: OutgoingEmail,
        every_seconds: int,
    ) -> bool:
        return await self._groups.submit(_SignUp(signup, by, acknowledgement, every_seconds))

    async def close(self) -> None:
        await self._groups.close()

    async def _settle(self, group: list[_SignUp]) -> list[bool | BaseException]:
        try:
            return list(await self._write(group))
        except Exception as exc:  # noqa: BLE001 - it reaches the caller through its result
            if len(group) == 1:
                return [exc]
            # One by one, so a bad row fails only its own request.
            return [(await self._settle([item]))[0] for item in group]

    async def _write(self, group: list[_SignUp]) -> list[bool]:
        """One transaction for the group; whether each address was new."""
        async with self._engine.begin() as conn:
            return await _statements(conn, group)


async def _statements(conn: AsyncConnection, signups: list[_SignUp]) -> list[bool]:
    # Rows in address order: a group written by another process at the same time takes its row
    # locks in the same order, so the two wait for each other instead of deadlocking.
    group = sorted(signups, key=lambda item: item.signup.email)
    # One cut-off for the group: the earliest sign-up's, so none is acknowledged early.
    due = min(item.by.at for item in group) - timedelta(seconds=group[0].every_seconds)
    if conn.dialect.name == "postgresql":
        inserted = await _postgres_join(conn, group, due)
    else:
        inserted = await _portable_join(conn, group, due)
    repeats = [
        {
            "repeat_email": item.signup.email,
            "repeat_at": item.by.at,
            "repeat_source": item.signup.fields.get("source") or None,
            "repeat_name": item.signup.fields.get("name") or None,
        }
        for item in group
        if item.signup.email not in inserted
    ]
    if repeats:
        await conn.execute(_REPEAT, repeats)
    return [item.signup.email in inserted for item in signups]


def _row(item: _SignUp) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "created_at": item.by.at,
        "updated_at": item.by.at,
        "email": item.signup.email,
        "ip": item.by.ip,
        "user_agent": item.by.user_agent,
        "name": item.signup.fields.get("name"),
        "source": item.signup.fields.get("source"),
    }


async def _portable_join(conn: AsyncConnection, group: list[_SignUp], due: datetime) -> set[str]:
    """Three multi-row statements (SQLite has no data-modifying ``WITH``); the new addresses."""
    dialect = conn.dialect.name
    rows = [_row(item) for item in group]
    inserted_ids: set[str] = set((await conn.execute(_INSERT_NEW[dialect], rows)).scalars())
    inserted = {row["email"] for row in rows if row["id"] in inserted_ids}
    claims = [
        {"email": item.signup.email, "last_sent_at": item.by.at, "ack_due": due} for item in group
    ]
    claimed: set[str] = set((await conn.execute(CLAIM_ACKNOWLEDGEMENT[dialect], claims)).scalars())
    messages = [
        outbox_row(item.acknowledgement, item.by.at)
        for item in group
        if item.signup.email in claimed
    ]
    if messages:
        await conn.execute(ENQUEUE, messages)
    return inserted


def _arrays(statement: str, **columns: Any) -> sa.TextClause:
    return sa.text(statement).bindparams(
        *(sa.bindparam(name, type_=postgresql.ARRAY(kind)) for name, kind in columns.items())
    )


_TEXT, _TIME = sa.Text(), sa.DateTime(timezone=True)
# One statement, whatever the group's size (so one prepared statement per connection): the
# rows arrive as arrays. Data-modifying WITH clauses all run to completion.
_POSTGRES_JOIN = _arrays(
    """
    WITH input AS (
        SELECT * FROM unnest(:ids, :ats, :emails, :ips, :agents, :names, :sources,
                             :outbox_ids, :subjects, :texts, :htmls)
            AS i(id, at, email, ip, user_agent, name, source,
                 outbox_id, subject, text_body, html_body)
    ), joined AS (
        INSERT INTO waitlist_entries
            (id, created_at, updated_at, email, ip, user_agent, name, source)
        SELECT id, at, at, email, ip, user_agent, name, source FROM input ORDER BY email
        ON CONFLICT (email) DO NOTHING
        RETURNING email
    ), claimed AS (
        INSERT INTO form_acknowledgements (email, last_sent_at)
        SELECT email, at FROM input ORDER BY email
        ON CONFLICT (email) DO UPDATE SET last_sent_at = excluded.last_sent_at
        WHERE form_acknowledgements.last_sent_at <= :due
        RETURNING email
    ), queued AS (
        INSERT INTO outbox_messages (id, created_at, recipient, subject, text_body, html_body,
                                     status, attempts, next_attempt_at)
        SELECT outbox_id, at, email, subject, text_body, html_body, :pending, 0, at
        FROM input JOIN claimed USING (email)
    )
    SELECT email FROM joined
    """,
    ids=_TEXT,
    ats=_TIME,
    emails=_TEXT,
    ips=_TEXT,
    agents=_TEXT,
    names=_TEXT,
    sources=_TEXT,
    outbox_ids=_TEXT,
    subjects=_TEXT,
    texts=_TEXT,
    htmls=_TEXT,
).bindparams(sa.bindparam("due", type_=_TIME))


async def _postgres_join(conn: AsyncConnection, group: list[_SignUp], due: datetime) -> set[str]:
    """The whole group in one round trip; the new addresses."""
    messages = [outbox_row(item.acknowledgement, item.by.at) for item in group]
    found = await conn.execute(
        _POSTGRES_JOIN,
        {
            "ids": [str(uuid.uuid4()) for _ in group],
            "ats": [item.by.at.astimezone(UTC) for item in group],
            "emails": [item.signup.email for item in group],
            "ips": [item.by.ip for item in group],
            "agents": [item.by.user_agent for item in group],
            "names": [item.signup.fields.get("name") for item in group],
            "sources": [item.signup.fields.get("source") for item in group],
            "outbox_ids": [message["id"] for message in messages],
            "subjects": [message["subject"] for message in messages],
            "texts": [message["text_body"] for message in messages],
            "htmls": [message["html_body"] for message in messages],
            "due": due.astimezone(UTC),
            "pending": PENDING,
        },
    )
    return set(found.scalars())
