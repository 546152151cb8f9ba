"""SqlUploadStore on SQLite and PostgreSQL: the fence a PATCH checks under its lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.files import SqlStorageQuota
from orbsurv.adapters.persistence.packages import SqlUploadStore
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.application.packages.ports import StagedTail, UploadDetails, UploadRecord
from orbsurv.application.ports import UploadedPart
from orbsurv.domain.identity import Role, User, new_id
from orbsurv.domain.packages import TooManyOpenUploads, UploadSession, UploadState
from tests.conftest import truncate_all

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MiB = 1024 * 1024


async def _user(engine: AsyncEngine) -> str:
    user = User(
        id=new_id(),
        email=f"{new_id()[:8]}@example.com",
        password_hash="x",
        role=Role.USER,
        created_at=T0,
        updated_at=T0,
    )
    async with engine.connect() as conn:
        await SqlUserRepository(conn).add(user)
        await SqlUnitOfWork(conn).commit()
    return user.id


def _record(owner_id: str, *, expires_at: datetime = T0 + timedelta(hours=1)) -> UploadRecord:
    upload_id = new_id()
    return UploadRecord(
        session=UploadSession(
            id=upload_id,
            owner_id=owner_id,
            length=20 * MiB,
            offset=0,
            state=UploadState.CREATED,
            expires_at=expires_at,
            created_at=T0,
        ),
        details=UploadDetails(package_name="p", version="1.0.0", file_name="p.bin"),
        protocol="orbsurv",
        storage_key=f"packages/uploads/{upload_id}/object",
        multipart_id="m",
    )


async def _session(engine: AsyncEngine, store: SqlUploadStore) -> str:
    record = _record(await _user(engine))
    await store.create(record, T0, max_open=None)
    return record.session.id


async def _reserved(engine: AsyncEngine, owner_id: str) -> int:
    async with engine.connect() as conn:
        return (await SqlStorageQuota(conn, 1024**3).usage(owner_id)).reserved


async def test_a_session_past_the_open_cap_is_refused_and_reserves_nothing(
    engine: AsyncEngine,
) -> None:
    store = SqlUploadStore(engine, default_quota=1024**3)
    owner = await _user(engine)
    stale = _record(owner, expires_at=T0 - timedelta(seconds=1))  # not swept yet: not counted
    await store.create(stale, T0 - timedelta(hours=1), max_open=2)
    first, second = _record(owner), _record(owner)
    await store.create(first, T0, max_open=2)
    await store.create(second, T0, max_open=2)
    held = await _reserved(engine, owner)
    with pytest.raises(TooManyOpenUploads):
        await store.create(_record(owner), T0, max_open=2)
    assert await _reserved(engine, owner) == held
    assert await store.get(first.session.id) is not None
    # One cancelled: room for one more. Another owner has a cap of its own.
    assert await store.move(
        first.session.id, from_states=(UploadState.CREATED,), to=UploadState.ABORTED, now=T0
    )
    await store.create(_record(owner), T0, max_open=2)
    await store.create(_record(await _user(engine)), T0, max_open=2)


@pytest.mark.postgres
async def test_concurrent_sessions_of_one_owner_cannot_pass_the_cap_together(
    postgres_url: str,
) -> None:
    await truncate_all(postgres_url)
    engine = make_engine(postgres_url)
    try:
        store = SqlUploadStore(engine, default_quota=1024**3)
        owner = await _user(engine)
        outcomes = await asyncio.gather(
            *(store.create(_record(owner), T0, max_open=3) for _ in range(12)),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, TooManyOpenUploads)]
        assert len(refused) == 9, outcomes
        assert await _reserved(engine, owner) == 3 * 20 * MiB
    finally:
        await engine.dispose()


async def test_confirm_holds_only_while_the_session_is_as_read(engine: AsyncEngine) -> None:
    store = SqlUploadStore(engine, default_quota=1024**3)
    upload_id = await _session(engine, store)
    now = T0 + timedelta(minutes=1)
    assert await store.confirm(upload_id, offset=0, now=now, reserve_part=False) == 0
    first = await store.confirm(upload_id, offset=0, now=now, reserve_part=True)
    second = await store.reserve_part_number(upload_id)
    third = await store.confirm(upload_id, offset=0, now=now, reserve_part=True)
    assert first is not None
    assert third is not None
    assert first < second < third  # one sequence: a number is never handed out twice
    part = UploadedPart(number=third, etag="e", size=8 * MiB)
    assert await store.record_progress(
        upload_id,
        expected_offset=0,
        new_offset=8 * MiB,
        part=part,
        tail=StagedTail(key=f"packages/uploads/{upload_id}/tail-1", size=MiB),
        drop_tail=False,
        now=now,
    )
    # Read before the offset moved: refused, and no number is taken.
    assert await store.confirm(upload_id, offset=0, now=now, reserve_part=True) is None
    assert await store.confirm(upload_id, offset=8 * MiB, now=now, reserve_part=False) == 0
    # Past its expiry, or once it is finalizing: refused.
    late = T0 + timedelta(hours=2)
    assert await store.confirm(upload_id, offset=8 * MiB, now=late, reserve_part=False) is None
    assert await store.move(
        upload_id, from_states=(UploadState.RECEIVING,), to=UploadState.FINALIZING, now=now
    )
    assert await store.confirm(upload_id, offset=8 * MiB, now=now, reserve_part=False) is None
    assert await store.reserve_part_number(upload_id) == third + 1
    record = await store.get(upload_id)
    assert record is not None
    assert record.tail == StagedTail(key=f"packages/uploads/{upload_id}/tail-1", size=MiB)
    assert record.session.offset == 8 * MiB


async def test_get_without_a_tail(engine: AsyncEngine) -> None:
    store = SqlUploadStore(engine, default_quota=1024**3)
    upload_id = await _session(engine, store)
    record = await store.get(upload_id)
    assert record is not None
    assert record.tail is None
    assert await store.get(new_id()) is None


async def test_awaiting_publication_lists_full_unpublished_quiet_sessions(
    engine: AsyncEngine,
) -> None:
    store = SqlUploadStore(engine, default_quota=1024**3)
    owner = await _user(engine)
    changed = T0 + timedelta(minutes=1)

    async def full(protocol: str, state: UploadState, *, offset: int = 20 * MiB) -> str:
        record = _record(owner)
        record.protocol = protocol
        await store.create(record, T0, max_open=None)
        upload_id = record.session.id
        if offset:
            assert await store.record_progress(
                upload_id,
                expected_offset=0,
                new_offset=offset,
                part=None,
                tail=None,
                drop_tail=False,
                now=changed,
            )
        if state is not UploadState.RECEIVING:
            assert await store.move(
                upload_id, from_states=(UploadState.RECEIVING,), to=state, now=changed
            )
        return upload_id

    finalizing = await full("orbsurv", UploadState.FINALIZING)
    tus_receiving = await full("tus", UploadState.RECEIVING)
    await full("orbsurv", UploadState.RECEIVING)  # waits for /complete
    await full("tus", UploadState.RECEIVING, offset=MiB)  # bytes still coming
    await full("tus", UploadState.ABORTED)

    quiet = changed + timedelta(seconds=1)
    found = await store.awaiting_publication(changed, changed_before=quiet, limit=10)
    assert {record.session.id for record in found} == {finalizing, tus_receiving}
    # Changed too recently (the request that got the last byte is publishing), or expired.
    assert await store.awaiting_publication(changed, changed_before=changed, limit=10) == []
    late = T0 + timedelta(hours=2)
    assert await store.awaiting_publication(late, changed_before=late, limit=10) == []
    assert len(await store.awaiting_publication(changed, changed_before=quiet, limit=1)) == 1
