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

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.batching import Batcher
from orbsurv.adapters.persistence.leads import JOIN_WAITLIST
from orbsurv.adapters.persistence.outbox import ENQUEUE, outbox_row
from orbsurv.adapters.persistence.tables import form_acknowledgements, waitlist_entries
from orbsurv.application.ports import OutgoingEmail
from orbsurv.domain.leads import Lead, Submitter

MAX_GROUP = 256  # sign-ups per transaction; the rest wait for the next one
# Transactions in flight at once on PostgreSQL: a commit waits for its WAL flush (milliseconds),
# and the group formed meanwhile need not wait for it. Their addresses never overlap (see
# ``_fits``), so they never wait on each other's rows. SQLite has one writer: one at a time.
CONCURRENT_GROUPS = 2

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
            concurrency=CONCURRENT_GROUPS if engine.dialect.name == "postgresql" else 1,
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
    inserted: set[str] = set((await conn.execute(JOIN_WAITLIST[dialect], rows)).scalars())
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
    new_by_email = {item.signup.email: new for item, new in zip(group, created, strict=True)}
    return [new_by_email[item.signup.email] for item in signups]
