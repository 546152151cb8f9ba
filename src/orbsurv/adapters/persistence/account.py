"""Account storage: single-use action tokens, per-user settings, dashboard figures."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from orbsurv.adapters.persistence.lease import lease_due
from orbsurv.adapters.persistence.tables import (
    action_tokens,
    audit_events,
    mail_requests,
    package_versions,
    packages,
    projects,
    security_alerts,
    sessions,
    storage_usage,
    user_settings,
    users,
)
from orbsurv.application.account.ports import ActionToken, DashboardFigures, MailRequestRecord
from orbsurv.domain.identity import (
    AUTOMATION_DEFAULTS,
    NOTIFICATION_DEFAULTS,
    TokenPurpose,
    UserSettings,
)

RECENT_LOGS = 10


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class SqlActionTokens:
    """Tokens are stored as HMAC-SHA256 under a key per purpose: a token of one purpose hashes to
    nothing another purpose stored, and the table alone yields no usable token.

    Each token records its account's credential generation when issued, read by the insert
    itself; redemption requires the account to still be at that generation, in the same
    conditional update that spends the token. A password change, an email change, a role change
    or a deactivation advances the generation (``SqlUserRepository.update``), so every outstanding
    link of the account dies with the credential it guarded, whichever code path changed it."""

    def __init__(self, connection: AsyncConnection, keys: Mapping[TokenPurpose, bytes]) -> None:
        self._conn = connection
        self._keys = keys

    def _hash(self, purpose: TokenPurpose, token: str) -> str:
        return hmac.new(self._keys[purpose], token.encode(), hashlib.sha256).hexdigest()

    async def issue(
        self,
        purpose: TokenPurpose,
        user_id: str,
        now: datetime,
        expires_at: datetime,
        new_email: str | None = None,
    ) -> str:
        token = secrets.token_urlsafe(32)
        await self._conn.execute(
            action_tokens.insert().values(
                token_hash=self._hash(purpose, token),
                purpose=purpose.value,
                user_id=user_id,
                new_email=new_email,
                created_at=now,
                expires_at=expires_at,
                credential_generation=sa.select(users.c.credential_generation)
                .where(users.c.id == user_id)
                .scalar_subquery(),
            )
        )
        return token

    async def issue_within(
        self,
        purpose: TokenPurpose,
        user_id: str,
        now: datetime,
        expires_at: datetime,
        *,
        since: datetime,
        limit: int,
        new_email: str | None = None,
    ) -> str | None:
        # The account's row lock serialises the count and the insert per account (FOR UPDATE
        # on PostgreSQL, whose next statement then sees what the holder committed; SQLite's
        # transactions begin IMMEDIATE and hold the one write lock already).
        lock = sa.select(users.c.credential_generation).where(users.c.id == user_id)
        if self._conn.dialect.name == "postgresql":
            lock = lock.with_for_update()
        generation = (await self._conn.execute(lock)).scalar_one_or_none()
        if generation is None:
            return None
        mine = sa.and_(action_tokens.c.user_id == user_id, action_tokens.c.purpose == purpose.value)
        issued, live = (
            await self._conn.execute(
                sa.select(
                    sa.func.count().filter(action_tokens.c.created_at >= since),
                    sa.func.count().filter(
                        action_tokens.c.used_at.is_(None),
                        action_tokens.c.expires_at > now,
                        action_tokens.c.credential_generation == generation,
                    ),
                ).where(mine)
            )
        ).one()
        if issued >= limit and live > 0:
            return None
        return await self.issue(purpose, user_id, now, expires_at, new_email)

    async def consume(
        self, purposes: Sequence[TokenPurpose], token: str, now: datetime
    ) -> ActionToken | None:
        if not token or len(token) > 256:
            return None
        candidates = {self._hash(purpose, token): purpose for purpose in purposes}
        row = (
            await self._conn.execute(
                action_tokens.update()
                .where(
                    action_tokens.c.token_hash.in_(list(candidates)),
                    action_tokens.c.used_at.is_(None),
                    action_tokens.c.expires_at > now,
                    action_tokens.c.credential_generation
                    == sa.select(users.c.credential_generation)
                    .where(users.c.id == action_tokens.c.user_id)
                    .scalar_subquery(),
                )
                .values(used_at=now)
                .returning(*action_tokens.c)
            )
        ).first()
        if row is None or candidates.get(row.token_hash) is not TokenPurpose(row.purpose):
            return None
        return ActionToken(
            purpose=TokenPurpose(row.purpose),
            user_id=row.user_id,
            new_email=row.new_email,
            expires_at=row.expires_at,
        )


class SqlUserSettings:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, user_id: str) -> UserSettings:
        row = (
            await self._conn.execute(
                sa.select(user_settings).where(user_settings.c.user_id == user_id)
            )
        ).first()
        if row is None:
            return UserSettings.defaults(user_id)
        return UserSettings(
            user_id=user_id,
            notifications={**NOTIFICATION_DEFAULTS, **row.notifications},
            automation={**AUTOMATION_DEFAULTS, **row.automation},
            timezone=row.timezone,
        )

    async def _locked(self, user_id: str, now: datetime) -> UserSettings:
        """The row, created with the defaults if missing, locked until the transaction ends
        (``FOR UPDATE`` on PostgreSQL; SQLite's write lock, taken by the insert, serialises)."""
        defaults = UserSettings.defaults(user_id)
        await self._conn.execute(
            _insert(self._conn, user_settings)
            .values(
                user_id=user_id,
                notifications=defaults.notifications,
                automation=defaults.automation,
                timezone=None,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        row = (
            await self._conn.execute(
                sa.select(user_settings).where(user_settings.c.user_id == user_id).with_for_update()
            )
        ).one()
        return UserSettings(
            user_id=user_id,
            notifications={**NOTIFICATION_DEFAULTS, **row.notifications},
            automation={**AUTOMATION_DEFAULTS, **row.automation},
            timezone=row.timezone,
        )

    async def merge(
        self, user_id: str, section: str, changes: dict[str, Any], now: datetime
    ) -> UserSettings:
        stored = await self._locked(user_id, now)
        merged: dict[str, Any] = {**getattr(stored, section), **changes}
        setattr(stored, section, merged)
        await self._conn.execute(
            user_settings.update()
            .where(user_settings.c.user_id == user_id)
            .values({section: merged, "updated_at": now})
        )
        return stored

    async def set_timezone(self, user_id: str, timezone: str, now: datetime) -> None:
        await self._locked(user_id, now)
        await self._conn.execute(
            user_settings.update()
            .where(user_settings.c.user_id == user_id)
            .values(timezone=timezone, updated_at=now)
        )


class SqlDashboardReader:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def figures(self, user_id: str, email: str, now: datetime) -> DashboardFigures:
        active = sa.select(sa.func.count()).where(
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        alerts = sa.select(sa.func.count()).where(
            security_alerts.c.acknowledged_at.is_(None),
            security_alerts.c.subject.in_([user_id, email]),
        )
        owned = sa.select(sa.func.count()).where(projects.c.owner_id == user_id)
        downloads = sa.select(sa.func.coalesce(sa.func.sum(projects.c.downloads), 0)).where(
            projects.c.owner_id == user_id
        )
        stored = sa.select(sa.func.coalesce(sa.func.sum(storage_usage.c.used_bytes), 0)).where(
            storage_usage.c.user_id == user_id
        )
        packages_owned = sa.select(sa.func.count()).where(packages.c.owner_id == user_id)
        package_downloads = (
            sa.select(sa.func.coalesce(sa.func.sum(package_versions.c.downloads), 0))
            .join(packages, packages.c.id == package_versions.c.package_id)
            .where(packages.c.owner_id == user_id)
        )
        counts = (
            await self._conn.execute(
                sa.select(
                    active.scalar_subquery(),
                    alerts.scalar_subquery(),
                    owned.scalar_subquery(),
                    downloads.scalar_subquery(),
                    stored.scalar_subquery(),
                    packages_owned.scalar_subquery(),
                    package_downloads.scalar_subquery(),
                )
            )
        ).one()
        logs = await self._conn.execute(
            sa.select(
                audit_events.c.id,
                audit_events.c.action,
                audit_events.c.occurred_at,
                audit_events.c.ip,
                audit_events.c.target_type,
                audit_events.c.target_id,
            )
            .where(audit_events.c.actor_user_id == user_id)
            .order_by(audit_events.c.occurred_at.desc(), audit_events.c.id.desc())
            .limit(RECENT_LOGS)
        )
        recent: list[dict[str, Any]] = [
            {
                "id": row.id,
                "action": row.action,
                "occurred_at": row.occurred_at,
                "ip": row.ip,
                "target_type": row.target_type,
                "target_id": row.target_id,
            }
            for row in logs
        ]
        return DashboardFigures(
            metrics={
                "active_sessions": int(counts[0]),
                "unacknowledged_alerts": int(counts[1]),
                "projects": int(counts[2]),
                "packages": int(counts[5]),
                # downloads of the account's own projects and package versions
                "downloads": int(counts[3]) + int(counts[6]),
                "storage_bytes": int(counts[4]),  # every stored file the account owns
            },
            recent_logs=recent,
        )


class SqlMailRequests:
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def record(self, kind: TokenPurpose, email: str, now: datetime) -> None:
        await self._conn.execute(
            mail_requests.insert().values(
                id=secrets.token_hex(16), kind=kind.value, email=email, requested_at=now
            )
        )

    async def claim(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[MailRequestRecord]:
        rows = await lease_due(
            self._conn,
            mail_requests,
            due=mail_requests.c.processed_at.is_(None),
            order_by=[mail_requests.c.requested_at, mail_requests.c.id],
            now=now,
            lease_until=lease_until,
            limit=limit,
        )
        return [MailRequestRecord(row.id, TokenPurpose(row.kind), row.email) for row in rows]

    async def done(self, request_id: str, now: datetime) -> None:
        await self._conn.execute(
            mail_requests.update()
            .where(mail_requests.c.id == request_id)
            .values(processed_at=now, claimed_until=None)
        )
