"""SqlUploadStore on SQLite and PostgreSQL: the fence a PATCH checks under its lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from orbsurv.adapters.persistence.packages import SqlUploadStore
from orbsurv.adapters.persistence.unit_of_work import SqlUnitOfWork
from orbsurv.adapters.persistence.users import SqlUserRepository
from orbsurv.application.packages.ports import StagedTail, UploadDetails, UploadRecord
from orbsurv.application.ports import UploadedPart
from orbsurv.domain.identity import Role, User, new_id
from orbsurv.domain.packages import UploadSession, UploadState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MiB = 1024 * 1024


async def _session(engine: AsyncEngine, store: SqlUploadStore) -> str:
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
    upload_id = new_id()
    record = UploadRecord(
        session=UploadSession(
            id=upload_id,
            owner_id=user.id,
            length=20 * MiB,
            offset=0,
            state=UploadState.CREATED,
            expires_at=T0 + timedelta(hours=1),
            created_at=T0,
        ),
        details=UploadDetails(package_name="p", version="1.0.0", file_name="p.bin"),
        protocol="orbsurv",
        storage_key=f"packages/uploads/{upload_id}/object",
        multipart_id="m",
    )
    await store.create(record, T0)
    return upload_id


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
