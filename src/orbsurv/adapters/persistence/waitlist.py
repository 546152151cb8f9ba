"""Waitlist sign-ups written by group commit.

A sign-up written in a transaction of its own costs five round trips (BEGIN, the upsert, the
acknowledgement claim, the outbox row, COMMIT) and a WAL flush. Here the sign-ups that arrive
while a transaction is in flight wait for the next one, and that one writes them all with the
same four statements (multi-row ``INSERT … ON CONFLICT … RETURNING``), so the cost per sign-up
falls as load rises. There is no timer: a lone sign-up is written at once.

Each caller still returns only after the transaction holding its row committed (0 lost). A
group never holds one address twice (a later duplicate waits for the next group), so
``ON CONFLICT`` never meets the same row twice in one statement and a repeat is told apart
from a new address exactly as one request at a time would. When a group's transaction fails,
its sign-ups are retried one by one, so one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.outbox import ENQUEUE, outbox_row
from orbsurv.adapters.persistence.tables import form_acknowledgements, waitlist_entries
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.leads import Lead, Submitter

MAX_GROUP = 256  # sign-ups per transaction; the rest wait for the next one

_JOIN = {
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


def _claim(dialect_name: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(form_acknowledgements)
    return statement.on_conflict_do_update(
        index_elements=["email"],
        set_={"last_sent_at": statement.excluded.last_sent_at},
        where=form_acknowledgements.c.last_sent_at <= sa.bindparam("ack_due"),
    ).returning(form_acknowledgements.c.email)


_CLAIM = {name: _claim(name) for name in ("postgresql", "sqlite")}


@dataclass(slots=True)
class _SignUp:
    signup: Lead
    by: Submitter
    acknowledgement: OutgoingEmail
    every_seconds: int
    outcome: asyncio.Future[bool]


class GroupCommitWaitlist:
    """The ``Waitlist`` port on SQL (PostgreSQL or SQLite), one transaction per group of
    concurrent sign-ups. Create it once per process (it owns a writer task); ``close()`` waits
    for the sign-ups already taken."""

    def __init__(self, engine: AsyncEngine, *, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: deque[_SignUp] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def join(
        self,
        signup: Lead,
        by: Submitter,
        *,
        acknowledgement: OutgoingEmail,
        every_seconds: int,
    ) -> bool:
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_SignUp(signup, by, acknowledgement, every_seconds, outcome))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="waitlist-group-commit")
        # A caller that goes away does not take its sign-up with it: the group still commits.
        return await asyncio.shield(outcome)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    def _take(self) -> list[_SignUp]:
        group: list[_SignUp] = []
        later: list[_SignUp] = []
        emails: set[str] = set()
        every = self._queue[0].every_seconds
        while self._queue and len(group) < self._max_group:
            item = self._queue.popleft()
            if item.signup.email in emails or item.every_seconds != every:
                later.append(item)
            else:
                emails.add(item.signup.email)
                group.append(item)
        self._queue.extendleft(reversed(later))
        return group

    async def _drain(self) -> None:
        while self._queue:
            group = self._take()
            try:
                await self._settle(group)
            except BaseException as exc:  # the writer was cancelled: fail its callers' waits
                for item in group:
                    if not item.outcome.done():
                        item.outcome.set_exception(exc)
                raise

    async def _settle(self, group: list[_SignUp]) -> None:
        try:
            created = await self._write(group)
        except Exception as exc:  # noqa: BLE001 - it reaches the caller through its future
            if len(group) == 1:
                group[0].outcome.set_exception(exc)
                return
            for item in group:  # one by one, so a bad row fails only its own request
                await self._settle([item])
            return
        for item, new in zip(group, created, strict=True):
            item.outcome.set_result(new)

    async def _write(self, group: list[_SignUp]) -> list[bool]:
        """One transaction for the group; whether each address was new."""
        async with self._engine.begin() as conn:
            return await _statements(conn, group)


async def _statements(conn: AsyncConnection, group: list[_SignUp]) -> list[bool]:
    dialect = conn.dialect.name
    rows = [
        {
            "id": str(uuid.uuid4()),
            "created_at": item.by.at,
            "updated_at": item.by.at,
            "email": item.signup.email,
            "ip": item.by.ip,
            "user_agent": item.by.user_agent,
            "name": item.signup.fields.get("name"),
            "source": item.signup.fields.get("source"),
        }
        for item in group
    ]
    inserted: set[str] = set((await conn.execute(_JOIN[dialect], rows)).scalars())
    created = [row["id"] in inserted for row in rows]
    repeats = [
        {
            "repeat_email": item.signup.email,
            "repeat_at": item.by.at,
            "repeat_source": item.signup.fields.get("source") or None,
            "repeat_name": item.signup.fields.get("name") or None,
        }
        for item, new in zip(group, created, strict=True)
        if not new
    ]
    if repeats:
        await conn.execute(_REPEAT, repeats)
    # One cut-off for the group: the earliest sign-up's, so none is acknowledged early.
    due = min(item.by.at for item in group) - timedelta(seconds=group[0].every_seconds)
    claims = [
        {"email": item.signup.email, "last_sent_at": item.by.at, "ack_due": due} for item in group
    ]
    claimed: set[str] = set((await conn.execute(_CLAIM[dialect], claims)).scalars())
    messages = [
        outbox_row(item.acknowledgement, item.by.at)
        for item in group
        if item.signup.email in claimed
    ]
    if messages:
        await conn.execute(ENQUEUE, messages)
    return created
