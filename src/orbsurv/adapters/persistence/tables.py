"""SQLAlchemy Core tables: the one schema source. Alembic autogenerates from ``metadata``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on every backend (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("username", sa.String(64), nullable=True, unique=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("organization", sa.String(255), nullable=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("is_active", sa.Boolean(), nullable=False),
    sa.Column("email_verified", sa.Boolean(), nullable=False),
    sa.Column("otp_secret", sa.String(64), nullable=True),
    sa.Column("otp_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("otp_last_step", sa.BigInteger(), nullable=True),
    sa.Column("last_login_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # Bumped by every read-modify-write of the row: a write based on an older read is refused.
    sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    # Bumped when the password hash, the email or the active state changes: action tokens issued
    # under an older generation no longer redeem.
    sa.Column("credential_generation", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Index("ix_users_created_at_id", "created_at", "id"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("scope", sa.String(8), nullable=False),
    sa.Column("amr", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_reason", sa.String(64), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Index("ix_sessions_user_id_created_at", "user_id", "created_at"),
    # Every worker's denylist mirror reads the recent revocations at start and polls them.
    sa.Index("ix_sessions_revoked_at", "revoked_at"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(36),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
    sa.Column("child_hash", sa.String(64), nullable=True),
    sa.Column("sealed_child", sa.String(128), nullable=True),
    sa.Index("ix_refresh_tokens_session_id", "session_id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("occurred_at", UtcDateTime(), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor_user_id", sa.String(36), nullable=True),  # no FK: the trail outlives users
    sa.Column("target_type", sa.String(32), nullable=True),
    sa.Column("target_id", sa.String(255), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Index("ix_audit_events_occurred_at_id", "occurred_at", "id"),
    # Each filter's index ends in (occurred_at, id): filter + keyset cursor is one index seek.
    sa.Index("ix_audit_events_action_occurred_at_id", "action", "occurred_at", "id"),
    sa.Index("ix_audit_events_actor_occurred_at_id", "actor_user_id", "occurred_at", "id"),
    sa.Index("ix_audit_events_ip_occurred_at_id", "ip", "occurred_at", "id"),
)

security_alerts = sa.Table(
    "security_alerts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("raised_at", UtcDateTime(), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("message", sa.String(500), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.String(36), nullable=True),
    sa.Index("ix_security_alerts_raised_at_id", "raised_at", "id"),
    sa.Index("ix_security_alerts_rule_subject", "rule", "subject"),
    # At most one open alert per rule and subject: the de-duplication is this index, so two
    # concurrent equal alerts cannot both be stored (INSERT ... ON CONFLICT DO NOTHING).
    sa.Index(
        "uq_security_alerts_open_rule_subject",
        "rule",
        "subject",
        unique=True,
        sqlite_where=sa.text("acknowledged_at IS NULL"),
        postgresql_where=sa.text("acknowledged_at IS NULL"),
    ),
)

outbox_messages = sa.Table(
    "outbox_messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("text_body", sa.Text(), nullable=False),
    sa.Column("html_body", sa.Text(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending, sent, dead
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("claimed_until", UtcDateTime(), nullable=True),
    sa.Column("sent_at", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_outbox_messages_created_at_id", "created_at", "id"),
)

action_tokens = sa.Table(
    "action_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("new_email", sa.String(254), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
    # The user's credential generation when the token was issued.
    sa.Column("credential_generation", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Index("ix_action_tokens_user_id_purpose", "user_id", "purpose"),
)

user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("notifications", sa.JSON(), nullable=False),
    sa.Column("automation", sa.JSON(), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

mail_requests = sa.Table(
    "mail_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),  # verify_email, reset_password
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("requested_at", UtcDateTime(), nullable=False),
    sa.Column("claimed_until", UtcDateTime(), nullable=True),
    sa.Column("processed_at", UtcDateTime(), nullable=True),
    sa.Index("ix_mail_requests_processed_at_requested_at", "processed_at", "requested_at"),
)


def _submission(name: str, *columns: sa.Column[Any]) -> sa.Table:
    """A public form's submissions: newest-first lists page by (created_at, id)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        *columns,
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Index(f"ix_{name}_created_at_id", "created_at", "id"),
    )


waitlist_entries = _submission(
    "waitlist_entries",
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("source", sa.String(255), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
contact_messages = _submission(
    "contact_messages",
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("company", sa.String(255), nullable=True),
    sa.Column("phone", sa.String(64), nullable=True),
    sa.Column("topic", sa.String(255), nullable=True),
)
investor_interests = _submission(
    "investor_interests",
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("amount", sa.String(64), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
)
pilot_requests = _submission(
    "pilot_requests",
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("org", sa.String(255), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("use_case", sa.Text(), nullable=False),
)
form_acknowledgements = sa.Table(
    "form_acknowledgements",
    metadata,
    sa.Column("email", sa.String(254), primary_key=True),
    sa.Column("last_sent_at", UtcDateTime(), nullable=False),
)
client_errors = sa.Table(
    "client_errors",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("message", sa.String(2000), nullable=False),
    sa.Column("stack", sa.Text(), nullable=True),
    sa.Column("url", sa.String(2048), nullable=True),
    sa.Column("line", sa.Integer(), nullable=True),
    sa.Column("column", sa.Integer(), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),  # first seen
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Index("ix_client_errors_created_at_id", "created_at", "id"),
)
analytics_events = sa.Table(
    "analytics_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),  # received
    sa.Column("occurred_at", UtcDateTime(), nullable=True),  # as the client says
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("page", sa.String(2048), nullable=True),
    sa.Column("client_id", sa.String(128), nullable=True),
    sa.Column("actor_user_id", sa.String(36), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Index("ix_analytics_events_created_at_id", "created_at", "id"),
    sa.Index("ix_analytics_events_type_client", "event_type", "client_id", "created_at"),
    sa.Index("ix_analytics_events_type_actor", "event_type", "actor_user_id", "created_at"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),  # normalised
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("plan_type", sa.String(32), nullable=False),
    sa.Column("price_cents", sa.BigInteger(), nullable=False),  # the catalogue's, minor units
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, completed, cancelled
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Index("ix_orders_created_at_id", "created_at", "id"),
    sa.Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
    sa.Index("ix_orders_email_created_at", "email", "created_at"),
    sa.Index("ix_orders_user_id_created_at_id", "user_id", "created_at", "id"),
)

# One registration link per address: the row is reissued (new hash) only once the old link is
# used or expired, so concurrent orders from one address cannot mail two live links.
order_links = sa.Table(
    "order_links",
    metadata,
    sa.Column("email", sa.String(254), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # HMAC-SHA256, hex
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

# --- knowledge base ------------------------------------------------------------------------

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),  # normalised: lower case
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("url", sa.String(2048), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("published", sa.Boolean(), nullable=False),
    sa.Column("created_by", sa.String(36), nullable=True),  # no FK: content outlives editors
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_resources_created_at_id", "created_at", "id"),
    sa.Index("ix_resources_type_created_at_id", "type", "created_at", "id"),
)
# One counter per content kind, bumped in the transaction of every change: a retrieval index in
# any worker compares it with the revision it was built from (one primary-key read).
content_revisions = sa.Table(
    "content_revisions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("revision", sa.BigInteger(), nullable=False),
)

# --- support chat ------------------------------------------------------------------------

support_conversations = sa.Table(
    "support_conversations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_support_conversations_created_at_id", "created_at", "id"),
    sa.Index("ix_support_conversations_user_created_at_id", "user_id", "created_at", "id"),
)
support_messages = sa.Table(
    "support_messages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "conversation_id",
        sa.String(36),
        sa.ForeignKey("support_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.String(36), nullable=False),  # the conversation's owner
    sa.Column("role", sa.String(16), nullable=False),  # user, assistant
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("sources", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # complete, partial, degraded
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index(
        "ix_support_messages_conversation_created_at_id", "conversation_id", "created_at", "id"
    ),
    sa.Index("ix_support_messages_user_created_at_id", "user_id", "created_at", "id"),
)
support_token_usage = sa.Table(
    "support_token_usage",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("tokens", sa.BigInteger(), nullable=False),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("visibility", sa.String(16), nullable=False),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("object_key", sa.String(255), nullable=False, unique=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(127), nullable=False),
    sa.Column("downloads", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_projects_owner_created_at_id", "owner_id", "created_at", "id"),
    sa.Index("ix_projects_visibility_created_at_id", "visibility", "created_at", "id"),
)

# Bytes each user stores (``used_bytes``) and has in flight (``reserved_bytes``), and an
# operator-set quota (NULL: USER_QUOTA_BYTES). Shared by every context that stores user files.
storage_usage = sa.Table(
    "storage_usage",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("used_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("reserved_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
)

# Objects that may be left behind by a crash: written before an upload streams (kind "upload",
# with the bytes it reserved) or before a deleted row's object is removed (kind "delete"). The
# request removes its row when it finishes; the worker's sweep finishes what a crash left.
object_cleanups = sa.Table(
    "object_cleanups",
    metadata,
    sa.Column("object_key", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(36), nullable=True),
    sa.Column("reserved_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_object_cleanups_created_at", "created_at"),
)

# --- software packages ------------------------------------------------------------------

packages = sa.Table(
    "packages",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("category", sa.String(64), nullable=True),
    sa.Column("language", sa.String(64), nullable=True),
    sa.Column("is_public", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("owner_id", "name", name="uq_packages_owner_id_name"),
    sa.Index("ix_packages_created_at_id", "created_at", "id"),
)
# Package names compare case-insensitively (``CasePkg`` and ``casepkg`` are one name per owner):
# names are ASCII (``check_package_name``), so lower() folds them alike on every database.
sa.Index(
    "uq_packages_owner_id_lower_name",
    packages.c.owner_id,
    sa.func.lower(packages.c.name),
    unique=True,
)
# Content-addressed bytes: one object per distinct SHA-256, freed when ref_count reaches 0.
package_blobs = sa.Table(
    "package_blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("storage_key", sa.String(512), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("ref_count", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_package_blobs_storage_key", "storage_key"),  # the sweeper's orphan check
)
package_versions = sa.Table(
    "package_versions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "package_id",
        sa.String(36),
        sa.ForeignKey("packages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("version", sa.String(128), nullable=False),
    # The version without build metadata: one version per precedence (SemVer 2.0.0 section 10).
    sa.Column("precedence", sa.String(128), nullable=False),
    sa.Column("blob_sha256", sa.String(64), sa.ForeignKey("package_blobs.sha256"), nullable=False),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("downloads", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("uploaded_by", sa.String(36), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint(
        "package_id", "precedence", name="uq_package_versions_package_id_precedence"
    ),
)
upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("length", sa.BigInteger(), nullable=False),
    sa.Column("offset", sa.BigInteger(), nullable=False),
    sa.Column("declared_sha256", sa.String(64), nullable=True),
    sa.Column("package_name", sa.String(128), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("category", sa.String(64), nullable=True),
    sa.Column("language", sa.String(64), nullable=True),
    sa.Column("is_public", sa.Boolean(), nullable=False),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=True),
    sa.Column("protocol", sa.String(8), nullable=False),  # "orbsurv" or "tus"
    sa.Column("storage_key", sa.String(512), nullable=False),
    sa.Column("multipart_id", sa.String(1024), nullable=True),
    sa.Column("next_part_number", sa.Integer(), nullable=False),
    sa.Column("result_package_id", sa.String(36), nullable=True),
    sa.Column("result_version_id", sa.String(36), nullable=True),
    sa.Column("result_sha256", sa.String(64), nullable=True),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_upload_sessions_state_expires_at", "state", "expires_at"),
    sa.Index("ix_upload_sessions_owner_id_state", "owner_id", "state"),
)
upload_parts = sa.Table(
    "upload_parts",
    metadata,
    sa.Column(
        "session_id",
        sa.String(36),
        sa.ForeignKey("upload_sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("part_number", sa.Integer(), primary_key=True),
    sa.Column("etag", sa.String(256), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
)
# Bytes shorter than the storage's minimum part size, kept as an object of their own until
# enough follow to make a part (or the upload completes).
upload_tails = sa.Table(
    "upload_tails",
    metadata,
    sa.Column(
        "session_id",
        sa.String(36),
        sa.ForeignKey("upload_sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("storage_key", sa.String(512), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
)
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)
