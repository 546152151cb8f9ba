"""Upload sessions and the package catalogue in SQL.

Both take the engine, not a request's connection: a PATCH may stream for minutes, and each step
(reserve a part number, record progress) is a short transaction of its own. Progress is one
conditional ``UPDATE ... WHERE offset = :expected`` (no read-then-write); blob references move
with ``ref_count = ref_count ± 1`` in the same transaction as the version row.

Quota (``SqlStorageQuota``, shared with projects): opening a session reserves its declared
size in the transaction that records it, so bytes in flight count against the quota; publishing
turns the reservation into bytes in use; aborting or expiring an open session releases it;
deleting a package frees its versions' bytes. Each step is in the transaction of the state
change it accounts for, so the books cannot drift from the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orbsurv.adapters.persistence.files import SqlStorageQuota
from orbsurv.adapters.persistence.tables import (
    package_blobs,
    package_versions,
    packages,
    upload_parts,
    upload_sessions,
    upload_tails,
    users,
)
from orbsurv.application.packages.ports import (
    PackageFilter,
    PackageSummary,
    PackageView,
    Publication,
    StagedTail,
    UploadDetails,
    UploadRecord,
    VersionView,
)
from orbsurv.application.ports import AuditLog, UploadedPart
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.packages import (
    PackageNameTaken,
    TooManyOpenUploads,
    TooManyVersions,
    UploadClosed,
    UploadResult,
    UploadSession,
    UploadState,
    VersionExists,
    precedence_of,
    publication_events,
)
from orbsurv.domain.pagination import Page, PageRequest

OPEN_STATES = (UploadState.CREATED.value, UploadState.RECEIVING.value)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _is_version_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the unique (package, precedence) index refusing a second row: the one
    integrity error that means "this version exists" (PostgreSQL names the constraint, SQLite
    the columns)."""
    text = str(exc.orig)
    return "uq_package_versions_package_id_precedence" in text or (
        "package_versions.package_id" in text and "package_versions.precedence" in text
    )


_CLAIM_ATTEMPTS = 5


async def _claim_blob(
    conn: AsyncConnection, sha256: str, record: UploadRecord, *, now: datetime, heal_blob: bool
) -> str | None:
    """Take one reference on the blob of ``sha256``, creating it with the upload's object when
    there is none; return the object key that became redundant (the upload's own object when the
    blob existed, the lost key when ``heal_blob`` moved the blob onto the upload's object).

    Race-safe without read-then-write: ``UPDATE ... ref_count + 1`` and, when no row matched,
    ``INSERT ... ON CONFLICT DO NOTHING``. On PostgreSQL the insert waits for a concurrent
    publication that is inserting the same blob and does nothing if that one commits; the loop
    then bumps the committed row. So two users publishing identical bytes at once both succeed
    (a unique violation here is never "version exists"). A blob deleted between the two
    statements (its last package went) is inserted again on the next turn."""
    for _ in range(_CLAIM_ATTEMPTS):
        bump: dict[str, Any] = {"ref_count": package_blobs.c.ref_count + 1}
        lost_key: str | None = None
        if heal_blob:  # the blob stores its bytes under the upload's key from now on
            bump["storage_key"] = record.storage_key
            lost_key = await conn.scalar(
                sa.select(package_blobs.c.storage_key).where(package_blobs.c.sha256 == sha256)
            )
        bumped = await conn.execute(
            package_blobs.update().where(package_blobs.c.sha256 == sha256).values(**bump)
        )
        if bumped.rowcount == 1:
            return lost_key if heal_blob else record.storage_key
        inserted = await conn.execute(
            _insert(conn, package_blobs)
            .values(
                sha256=sha256,
                storage_key=record.storage_key,
                size=record.session.length,
                ref_count=1,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        if inserted.rowcount == 1:
            return None
    raise RuntimeError(f"the blob {sha256} could not be claimed in {_CLAIM_ATTEMPTS} attempts")


async def _claim_package(
    conn: AsyncConnection, record: UploadRecord, package_id: str, now: datetime
) -> tuple[str, bool]:
    """The id of the owner's package of this name, created (as ``package_id``) when absent, and
    whether this call created it. ``INSERT ... ON CONFLICT DO NOTHING`` then a read, so two
    first versions of one new package published at once share the package instead of one
    failing on the unique name. The row stays locked to the end of the transaction
    (PostgreSQL; SQLite holds its one write lock already), so concurrent publications count
    its versions in turn."""
    s, d = record.session, record.details
    for _ in range(_CLAIM_ATTEMPTS):
        found = (
            await conn.execute(
                sa.select(packages.c.id, packages.c.name)
                .where(
                    packages.c.owner_id == s.owner_id,
                    sa.func.lower(packages.c.name) == d.package_name.lower(),
                )
                .with_for_update()
            )
        ).first()
        if found is not None:
            if found.name != d.package_name:  # names compare case-insensitively (TR39)
                raise PackageNameTaken(d.package_name, found.name)
            return str(found.id), False
        inserted = await conn.execute(
            _insert(conn, packages)
            .values(
                id=package_id,
                owner_id=s.owner_id,
                name=d.package_name,
                description=d.description,
                category=d.category,
                language=d.language,
                is_public=d.is_public,
                created_at=now,
                updated_at=now,
            )
            # no conflict target: whichever unique index on the owner's names refuses the row
            # (the exact name or a case-folded one), the package that holds the name is read next
            .on_conflict_do_nothing()
        )
        if inserted.rowcount == 1:
            return package_id, True
    raise RuntimeError(f"the package {d.package_name} could not be claimed")


def _record(row: sa.Row[Any], tail: tuple[str, int] | None) -> UploadRecord:
    m = row._mapping
    result = None
    if m["result_version_id"] is not None:
        result = UploadResult(
            package_id=m["result_package_id"],
            version_id=m["result_version_id"],
            sha256=m["result_sha256"],
            size=m["length"],
        )
    session = UploadSession(
        id=m["id"],
        owner_id=m["owner_id"],
        length=m["length"],
        offset=m["offset"],
        state=UploadState(m["state"]),
        expires_at=m["expires_at"],
        created_at=m["created_at"],
        result=result,
    )
    details = UploadDetails(
        package_name=m["package_name"],
        version=m["version"],
        file_name=m["file_name"],
        description=m["description"],
        category=m["category"],
        language=m["language"],
        is_public=m["is_public"],
        content_type=m["content_type"],
        sha256=m["declared_sha256"],
    )
    return UploadRecord(
        session=session,
        details=details,
        protocol=m["protocol"],
        storage_key=m["storage_key"],
        multipart_id=m["multipart_id"],
        tail=None if tail is None else StagedTail(key=tail[0], size=tail[1]),
    )


class SqlUploadStore:
    def __init__(self, engine: AsyncEngine, default_quota: int) -> None:
        self._engine = engine
        self._quota = default_quota

    async def create(self, record: UploadRecord, now: datetime, *, max_open: int | None) -> None:
        s, d = record.session, record.details
        async with self._engine.begin() as conn:
            # The reservation locks the owner's usage row until commit, so the count below sees
            # every session a concurrent creation by the same owner committed before it.
            await SqlStorageQuota(conn, self._quota).reserve(s.owner_id, s.length)
            if max_open is not None:
                c = upload_sessions.c
                open_now = await conn.scalar(
                    sa.select(sa.func.count()).where(
                        c.owner_id == s.owner_id,
                        c.state.in_(OPEN_STATES),
                        c.expires_at > now,
                    )
                )
                if (open_now or 0) >= max_open:
                    raise TooManyOpenUploads(
                        f"You have {open_now} uploads open (at most {max_open}): finish or "
                        "cancel one first."
                    )
            await conn.execute(
                upload_sessions.insert().values(
                    id=s.id,
                    owner_id=s.owner_id,
                    state=s.state.value,
                    length=s.length,
                    offset=s.offset,
                    declared_sha256=d.sha256,
                    package_name=d.package_name,
                    version=d.version,
                    description=d.description,
                    category=d.category,
                    language=d.language,
                    is_public=d.is_public,
                    file_name=d.file_name,
                    content_type=d.content_type,
                    protocol=record.protocol,
                    storage_key=record.storage_key,
                    multipart_id=record.multipart_id,
                    next_part_number=0,
                    expires_at=s.expires_at,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def _get(self, conn: AsyncConnection, upload_id: str) -> UploadRecord | None:
        # One statement: the session with its staged tail (at most one row per session).
        row = (
            await conn.execute(
                sa.select(
                    upload_sessions,
                    upload_tails.c.storage_key.label("tail_key"),
                    upload_tails.c.size.label("tail_size"),
                )
                .outerjoin(upload_tails, upload_tails.c.session_id == upload_sessions.c.id)
                .where(upload_sessions.c.id == upload_id)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        tail = None if m["tail_key"] is None else (m["tail_key"], m["tail_size"])
        return _record(row, tail)

    async def get(self, upload_id: str) -> UploadRecord | None:
        async with self._engine.connect() as conn:
            return await self._get(conn, upload_id)

    async def parts(self, upload_id: str) -> list[UploadedPart]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(upload_parts)
                .where(upload_parts.c.session_id == upload_id)
                .order_by(upload_parts.c.part_number)
            )
            return [
                UploadedPart(number=r.part_number, etag=r.etag, size=r.size) for r in rows.all()
            ]

    async def reserve_part_number(self, upload_id: str) -> int:
        async with self._engine.begin() as conn:
            number = (
                await conn.execute(
                    upload_sessions.update()
                    .where(upload_sessions.c.id == upload_id)
                    .values(next_part_number=upload_sessions.c.next_part_number + 1)
                    .returning(upload_sessions.c.next_part_number)
                )
            ).scalar_one()
            return int(number)

    async def confirm(
        self, upload_id: str, *, offset: int, now: datetime, reserve_part: bool
    ) -> int | None:
        async with self._engine.begin() as conn:
            found = (
                await conn.execute(
                    upload_sessions.update()
                    .where(
                        upload_sessions.c.id == upload_id,
                        upload_sessions.c.offset == offset,
                        upload_sessions.c.state.in_(OPEN_STATES),
                        upload_sessions.c.expires_at > now,
                    )
                    .values(
                        next_part_number=upload_sessions.c.next_part_number
                        + (1 if reserve_part else 0)
                    )
                    .returning(upload_sessions.c.next_part_number)
                )
            ).first()
            if found is None:
                return None
            return int(found[0]) if reserve_part else 0

    async def record_progress(
        self,
        upload_id: str,
        *,
        expected_offset: int,
        new_offset: int,
        part: UploadedPart | None,
        tail: StagedTail | None,
        drop_tail: bool,
        now: datetime,
    ) -> bool:
        states = (*OPEN_STATES, UploadState.FINALIZING.value)
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                upload_sessions.update()
                .where(
                    upload_sessions.c.id == upload_id,
                    upload_sessions.c.offset == expected_offset,
                    upload_sessions.c.state.in_(states),
                )
                .values(
                    offset=new_offset,
                    state=sa.case(
                        (
                            upload_sessions.c.state == UploadState.CREATED.value,
                            UploadState.RECEIVING.value,
                        ),
                        else_=upload_sessions.c.state,
                    ),
                    updated_at=now,
                )
            )
            if moved.rowcount != 1:
                return False
            if part is not None:
                await conn.execute(
                    upload_parts.insert().values(
                        session_id=upload_id,
                        part_number=part.number,
                        etag=part.etag,
                        size=part.size,
                    )
                )
            if drop_tail or tail is not None:
                await conn.execute(
                    sa.delete(upload_tails).where(upload_tails.c.session_id == upload_id)
                )
            if tail is not None:
                await conn.execute(
                    upload_tails.insert().values(
                        session_id=upload_id, storage_key=tail.key, size=tail.size
                    )
                )
            return True

    async def move(
        self, upload_id: str, *, from_states: Sequence[UploadState], to: UploadState, now: datetime
    ) -> bool:
        holding = {UploadState.CREATED, UploadState.RECEIVING, UploadState.FINALIZING}
        ending = to in {UploadState.ABORTED, UploadState.EXPIRED}
        async with self._engine.begin() as conn:
            if ending:
                # Leaving a state that holds a reservation gives the reservation back.
                released = (
                    await conn.execute(
                        upload_sessions.update()
                        .where(
                            upload_sessions.c.id == upload_id,
                            upload_sessions.c.state.in_(
                                [s.value for s in from_states if s in holding]
                            ),
                        )
                        .values(state=to.value, updated_at=now)
                        .returning(upload_sessions.c.owner_id, upload_sessions.c.length)
                    )
                ).first()
                if released is not None:
                    await SqlStorageQuota(conn, self._quota).release(released[0], released[1])
                    return True
            moved = await conn.execute(
                upload_sessions.update()
                .where(
                    upload_sessions.c.id == upload_id,
                    upload_sessions.c.state.in_([s.value for s in from_states]),
                )
                .values(state=to.value, updated_at=now)
            )
            return moved.rowcount == 1

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(upload_sessions.c.id)
                .where(upload_sessions.c.expires_at <= now)
                .order_by(upload_sessions.c.expires_at)
                .limit(limit)
            )
            ids: list[str] = list(found.scalars())
            records = [await self._get(conn, upload_id) for upload_id in ids]
        return [record for record in records if record is not None]

    async def awaiting_publication(
        self, now: datetime, *, changed_before: datetime, limit: int
    ) -> list[UploadRecord]:
        c = upload_sessions.c
        full = c.offset == c.length
        pending = sa.or_(
            c.state == UploadState.FINALIZING.value,
            sa.and_(c.state == UploadState.RECEIVING.value, c.protocol == "tus"),
        )
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(c.id)
                .where(full, pending, c.expires_at > now, c.updated_at < changed_before)
                .order_by(c.updated_at)
                .limit(limit)
            )
            ids: list[str] = list(found.scalars())
            records = [await self._get(conn, upload_id) for upload_id in ids]
        return [record for record in records if record is not None]

    async def delete(self, upload_id: str) -> None:
        async with self._engine.begin() as conn:
            for table in (upload_parts, upload_tails):
                await conn.execute(sa.delete(table).where(table.c.session_id == upload_id))
            await conn.execute(sa.delete(upload_sessions).where(upload_sessions.c.id == upload_id))

    async def free_bytes(self, owner_id: str) -> int:
        async with self._engine.connect() as conn:
            return (await SqlStorageQuota(conn, self._quota).usage(owner_id)).free

    async def existing(self, upload_ids: Collection[str]) -> set[str]:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(upload_sessions.c.id).where(upload_sessions.c.id.in_(list(upload_ids)))
            )
            return set(found.scalars())

    async def in_flight_bytes(self, owner_id: str) -> int:
        async with self._engine.connect() as conn:
            total: int = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(upload_sessions.c.length), 0)).where(
                        upload_sessions.c.owner_id == owner_id,
                        upload_sessions.c.state.in_((*OPEN_STATES, UploadState.FINALIZING.value)),
                    )
                )
            ).scalar_one()
            return int(total)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


_VERSION_STATS = (
    sa.select(
        package_versions.c.package_id,
        sa.func.count().label("versions"),
        sa.func.coalesce(sa.func.sum(package_versions.c.downloads), 0).label("downloads"),
        sa.func.coalesce(sa.func.sum(package_versions.c.size), 0).label("size"),
    )
    .group_by(package_versions.c.package_id)
    .subquery("stats")
)


def _package(row: sa.Row[Any]) -> PackageView:
    m = row._mapping
    return PackageView(
        id=m["id"],
        owner_id=m["owner_id"],
        owner_email=m["owner_email"],
        name=m["name"],
        description=m["description"],
        category=m["category"],
        language=m["language"],
        is_public=m["is_public"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        versions=int(m["versions"] or 0),
        downloads=int(m["downloads"] or 0),
        size=int(m["size"] or 0),
    )


def _package_query() -> sa.Select[Any]:
    return (
        sa.select(
            packages,
            users.c.email.label("owner_email"),
            _VERSION_STATS.c.versions,
            _VERSION_STATS.c.downloads,
            _VERSION_STATS.c.size,
        )
        .join(users, users.c.id == packages.c.owner_id)
        .outerjoin(_VERSION_STATS, _VERSION_STATS.c.package_id == packages.c.id)
    )


def _too_many_versions(limit: int) -> TooManyVersions:
    return TooManyVersions(
        f"This package holds {limit} versions, the most one package may hold: delete it, or "
        "publish under another name."
    )


class SqlPackageCatalog:
    """The catalogue. Every change (a publication, a metadata edit, a deletion) records its
    audit events through ``audit_log(connection)`` in the transaction that makes it, so the
    trail and the rows cannot disagree."""

    def __init__(
        self,
        engine: AsyncEngine,
        default_quota: int,
        audit_log: Callable[[AsyncConnection], AuditLog],
    ) -> None:
        self._engine = engine
        self._quota = default_quota
        self._audit_log = audit_log

    async def _record(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        log = self._audit_log(conn)
        for event in events:
            await log.record(event)

    async def version_count(self, owner_id: str, package_name: str) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(package_versions)
                .join(packages, packages.c.id == package_versions.c.package_id)
                .where(
                    packages.c.owner_id == owner_id,
                    sa.func.lower(packages.c.name) == package_name.lower(),
                )
            )
            return int(count or 0)

    async def version_exists(self, owner_id: str, package_name: str, version: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(package_versions.c.id)
                .join(packages, packages.c.id == package_versions.c.package_id)
                .where(
                    packages.c.owner_id == owner_id,
                    sa.func.lower(packages.c.name) == package_name.lower(),
                    package_versions.c.precedence == precedence_of(version),
                )
            )
            return found.first() is not None

    async def spelling(self, owner_id: str, package_name: str) -> str | None:
        async with self._engine.connect() as conn:
            name: str | None = await conn.scalar(
                sa.select(packages.c.name).where(
                    packages.c.owner_id == owner_id,
                    sa.func.lower(packages.c.name) == package_name.lower(),
                )
            )
            return name

    async def blob_key(self, sha256: str) -> str | None:
        async with self._engine.connect() as conn:
            key: str | None = await conn.scalar(
                sa.select(package_blobs.c.storage_key).where(package_blobs.c.sha256 == sha256)
            )
            return key

    async def publish(
        self,
        record: UploadRecord,
        *,
        sha256: str,
        version_id: str,
        package_id: str,
        now: datetime,
        heal_blob: bool = False,
        max_versions: int | None = None,
        context: RequestContext | None = None,
    ) -> Publication:
        s, d = record.session, record.details
        async with self._engine.begin() as conn:
            claimed = await conn.execute(
                upload_sessions.update()
                .where(
                    upload_sessions.c.id == s.id,
                    upload_sessions.c.state == UploadState.FINALIZING.value,
                )
                .values(state=UploadState.COMPLETED.value, updated_at=now)
            )
            if claimed.rowcount != 1:
                raise UploadClosed("This upload is no longer finalizing.")
            # ``create`` reserved the size (every protocol): settle it as stored bytes.
            quota = SqlStorageQuota(conn, self._quota)
            await quota.commit(s.owner_id, reserved=s.length, stored=s.length)
            redundant = await _claim_blob(conn, sha256, record, now=now, heal_blob=heal_blob)
            package_id, created = await _claim_package(conn, record, package_id, now)
            if not created and max_versions is not None:
                held = await conn.scalar(
                    sa.select(sa.func.count()).where(package_versions.c.package_id == package_id)
                )
                if (held or 0) >= max_versions:
                    raise _too_many_versions(max_versions)
            try:
                await conn.execute(
                    package_versions.insert().values(
                        id=version_id,
                        package_id=package_id,
                        version=d.version,
                        precedence=precedence_of(d.version),
                        blob_sha256=sha256,
                        file_name=d.file_name,
                        content_type=d.content_type,
                        size=s.length,
                        downloads=0,
                        uploaded_by=s.owner_id,
                        created_at=now,
                    )
                )
            except IntegrityError as exc:
                if not _is_version_conflict(exc):
                    raise
                raise VersionExists(
                    f"Version {d.version} of {d.package_name} already exists."
                ) from None
            await conn.execute(
                upload_sessions.update()
                .where(upload_sessions.c.id == s.id)
                .values(
                    result_package_id=package_id,
                    result_version_id=version_id,
                    result_sha256=sha256,
                )
            )
            result = UploadResult(
                package_id=package_id, version_id=version_id, sha256=sha256, size=s.length
            )
            events = publication_events(
                result,
                owner_id=s.owner_id,
                package_name=d.package_name,
                version=d.version,
                is_public=d.is_public,
                protocol=record.protocol,
                upload_id=s.id,
                created_package=created,
                at=now,
                context=context,
            )
            await self._record(conn, events)
        return Publication(result=result, redundant_key=redundant)

    async def find(self, filters: PackageFilter, page: PageRequest) -> Page[PackageView]:
        conditions: list[sa.ColumnElement[bool]] = []
        if not filters.is_admin:
            conditions.append(
                sa.or_(packages.c.is_public.is_(True), packages.c.owner_id == filters.viewer_id)
            )
        if filters.q:
            pattern = _like(filters.q)
            conditions.append(
                sa.or_(
                    sa.func.lower(packages.c.name).like(pattern, escape="\\"),
                    sa.func.lower(packages.c.description).like(pattern, escape="\\"),
                )
            )
        if filters.category:
            conditions.append(sa.func.lower(packages.c.category) == filters.category.lower())
        if filters.language:
            conditions.append(sa.func.lower(packages.c.language) == filters.language.lower())
        async with self._engine.connect() as conn:
            total = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(packages).where(*conditions)
                )
            ).scalar_one()
            rows = await conn.execute(
                _package_query()
                .where(*conditions)
                .order_by(packages.c.created_at.desc(), packages.c.id.desc())
                .limit(page.page_size)
                .offset(page.offset)
            )
            items = [_package(row) for row in rows.all()]
            names: dict[str, list[str]] = {item.id: [] for item in items}
            if names:
                found = await conn.execute(
                    sa.select(package_versions.c.package_id, package_versions.c.version).where(
                        package_versions.c.package_id.in_(list(names))
                    )
                )
                for row in found.all():
                    names[str(row[0])].append(str(row[1]))
            items = [replace(item, version_names=tuple(names[item.id])) for item in items]
        return Page(items=items, total=int(total), page=page.page, page_size=page.page_size)

    async def get(self, package_id: str) -> PackageView | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_package_query().where(packages.c.id == package_id))).first()
            return None if row is None else _package(row)

    @staticmethod
    def _version(r: sa.Row[Any]) -> VersionView:
        return VersionView(
            id=r.id,
            package_id=r.package_id,
            version=r.version,
            file_name=r.file_name,
            content_type=r.content_type,
            size=r.size,
            sha256=r.blob_sha256,
            storage_key=r.storage_key,
            downloads=r.downloads,
            created_at=r.created_at,
        )

    def _versions_query(self, package_id: str) -> sa.Select[Any]:
        return (
            sa.select(package_versions, package_blobs.c.storage_key)
            .join(package_blobs, package_blobs.c.sha256 == package_versions.c.blob_sha256)
            .where(package_versions.c.package_id == package_id)
            .order_by(package_versions.c.created_at.desc(), package_versions.c.id.desc())
        )

    async def versions(self, package_id: str) -> list[VersionView]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(self._versions_query(package_id))
            return [self._version(r) for r in rows.all()]

    async def version_page(self, package_id: str, page: PageRequest) -> Page[VersionView]:
        async with self._engine.connect() as conn:
            total = await conn.scalar(
                sa.select(sa.func.count()).where(package_versions.c.package_id == package_id)
            )
            rows = await conn.execute(
                self._versions_query(package_id).limit(page.page_size).offset(page.offset)
            )
            items = [self._version(r) for r in rows.all()]
        return Page(items=items, total=int(total or 0), page=page.page, page_size=page.page_size)

    async def version_names(self, package_id: str) -> list[tuple[str, str]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(package_versions.c.id, package_versions.c.version).where(
                    package_versions.c.package_id == package_id
                )
            )
            return [(str(r[0]), str(r[1])) for r in rows.all()]

    async def update(
        self, package_id: str, changes: dict[str, object], now: datetime, event: AuditEvent
    ) -> bool:
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                packages.update()
                .where(packages.c.id == package_id)
                .values(**changes, updated_at=now)
            )
            if changed.rowcount != 1:
                return False
            await self._record(conn, [event])
            return True

    async def delete(self, package_id: str, event: AuditEvent) -> list[str] | None:
        async with self._engine.begin() as conn:
            owner = (
                await conn.execute(
                    sa.select(packages.c.owner_id).where(packages.c.id == package_id)
                )
            ).scalar()
            if owner is None:
                return None  # a concurrent delete won
            stored: int = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(package_versions.c.size), 0)).where(
                        package_versions.c.package_id == package_id
                    )
                )
            ).scalar_one()
            await SqlStorageQuota(conn, self._quota).free(owner, int(stored))
            shas: list[str] = list(
                (
                    await conn.execute(
                        sa.select(package_versions.c.blob_sha256).where(
                            package_versions.c.package_id == package_id
                        )
                    )
                ).scalars()
            )
            await conn.execute(
                sa.delete(package_versions).where(package_versions.c.package_id == package_id)
            )
            await conn.execute(sa.delete(packages).where(packages.c.id == package_id))
            freed: list[str] = []
            for sha in shas:
                await conn.execute(
                    package_blobs.update()
                    .where(package_blobs.c.sha256 == sha)
                    .values(ref_count=package_blobs.c.ref_count - 1)
                )
                gone = (
                    await conn.execute(
                        sa.delete(package_blobs)
                        .where(package_blobs.c.sha256 == sha, package_blobs.c.ref_count <= 0)
                        .returning(package_blobs.c.storage_key)
                    )
                ).scalar()
                if gone is not None:
                    freed.append(gone)
            await self._record(conn, [event])
            return freed

    async def referenced_keys(self, keys: Collection[str]) -> set[str]:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(package_blobs.c.storage_key).where(
                    package_blobs.c.storage_key.in_(list(keys))
                )
            )
            return set(found.scalars())

    async def count_download(self, version_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                package_versions.update()
                .where(package_versions.c.id == version_id)
                .values(downloads=package_versions.c.downloads + 1)
            )

    async def summary(self) -> PackageSummary:
        async with self._engine.connect() as conn:
            totals = (
                await conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.coalesce(sa.func.sum(package_versions.c.size), 0),
                        sa.func.coalesce(sa.func.sum(package_versions.c.downloads), 0),
                    ).select_from(package_versions)
                )
            ).one()
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(packages))
            ).scalar_one()

            async def top(column: sa.Column[Any]) -> list[tuple[str, int]]:
                rows = await conn.execute(
                    sa.select(column, sa.func.count().label("n"))
                    .where(column.is_not(None))
                    .group_by(column)
                    .order_by(sa.desc("n"), column)
                    .limit(5)
                )
                return [(str(r[0]), int(r[1])) for r in rows.all()]

            return PackageSummary(
                packages=int(count),
                versions=int(totals[0]),
                bytes=int(totals[1]),
                downloads=int(totals[2]),
                top_languages=await top(packages.c.language),
                top_categories=await top(packages.c.category),
            )
