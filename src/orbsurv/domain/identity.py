"""Identity: users, roles and the password policy."""

from __future__ import annotations

import enum
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from orbsurv.domain.errors import FieldInvalid

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 255


class Permission(enum.Enum):
    USE_PORTAL = "use_portal"
    READ_CONSOLE = "read_console"
    MANAGE_CONTENT = "manage_content"
    ADMINISTER = "administer"  # the console's write routes marked "dev"


class Scope(enum.Enum):
    """What a session was opened for. ``dev`` needs the dev role and a second factor."""

    USER = "user"
    DEV = "dev"


class Role(enum.Enum):
    """Roles, ordered: ``user < admin < dev``."""

    USER = "user"
    ADMIN = "admin"
    DEV = "dev"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    def allows(self, permission: Permission, scope: Scope = Scope.USER) -> bool:
        """The permission matrix. A ``dev`` holds its console powers, reading included, only in
        a ``dev`` scope (opened with a second factor); in a ``user`` scope it is a plain user. An
        ``admin`` reads the console in any scope."""
        if permission is Permission.ADMINISTER:
            return self is Role.DEV and scope is Scope.DEV
        if self is Role.DEV and scope is not Scope.DEV and permission in DEV_SCOPED:
            return False
        return permission in _GRANTS[self]

    def needs_dev_scope(self, permission: Permission, scope: Scope) -> bool:
        """True when this role would hold ``permission`` in a ``dev`` scope but not in
        ``scope``: the answer is "open a dev session", not "your role does not allow this"."""
        return not self.allows(permission, scope) and self.allows(permission, Scope.DEV)


_ROLE_RANK = {Role.USER: 0, Role.ADMIN: 1, Role.DEV: 2}
# What a dev holds only in a dev scope: the whole console, content and order management included
# (signed in without the second factor, a dev is a plain user).
DEV_SCOPED = frozenset({Permission.READ_CONSOLE, Permission.MANAGE_CONTENT, Permission.ADMINISTER})
_GRANTS = {
    Role.USER: frozenset({Permission.USE_PORTAL}),
    Role.ADMIN: frozenset(
        {Permission.USE_PORTAL, Permission.READ_CONSOLE, Permission.MANAGE_CONTENT}
    ),
    Role.DEV: frozenset(
        {Permission.USE_PORTAL, Permission.READ_CONSOLE, Permission.MANAGE_CONTENT}
    ),
}


def new_id() -> str:
    return str(uuid.uuid4())


def normalise_email(email: str) -> str:
    """The stored form of an address: trimmed and lower-cased."""
    return email.strip().lower()


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("orbsurv.domain").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_password_policy(password: str, *, field: str = "password") -> None:
    """8 to 128 characters (counted after NFC normalisation), anything allowed, no composition
    rules, not one of the most common passwords. Never truncates."""
    length = len(unicodedata.normalize("NFC", password))
    if length < PASSWORD_MIN_LENGTH:
        raise FieldInvalid(field, f"must be at least {PASSWORD_MIN_LENGTH} characters long")
    if length > PASSWORD_MAX_LENGTH:
        raise FieldInvalid(field, f"must be at most {PASSWORD_MAX_LENGTH} characters long")
    if password.lower() in _common_passwords():
        raise FieldInvalid(field, "is too common; choose a password that is harder to guess")


@dataclass(slots=True)
class User:
    id: str
    email: str
    password_hash: str
    role: Role
    created_at: datetime
    updated_at: datetime
    name: str | None = None
    organization: str | None = None
    username: str | None = None
    is_active: bool = True
    email_verified: bool = False
    otp_secret: str | None = None
    otp_enabled: bool = False
    otp_last_step: int | None = None
    last_login_at: datetime | None = None
    version: int = 0  # the row version this copy was read at (optimistic concurrency)


@dataclass(slots=True)
class Session:
    """A refresh-token family: one sign-in on one device, until it expires or is revoked."""

    id: str
    user_id: str
    scope: Scope
    amr: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    revoked_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: str
    role: Role
    scope: Scope
    session_id: str
    amr: tuple[str, ...] = ()

    def can(self, permission: Permission) -> bool:
        return self.role.allows(permission, self.scope)

    def refusal_code(self, permission: Permission) -> str:
        """The ``code`` of a 403 for ``permission``: ``dev_session_required`` when a dev session
        (second factor) would grant it, ``forbidden`` when this role never holds it."""
        if self.role.needs_dev_scope(permission, self.scope):
            return "dev_session_required"
        return "forbidden"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    session_id: str
    role: Role
    scope: Scope
    amr: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    token_id: str


class TokenPurpose(enum.Enum):
    """What a single-use link in an email may do; a token of one purpose never does another."""

    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a secret


NOTIFICATION_DEFAULTS: dict[str, bool] = {
    "email_alerts": True,
    "security_alerts": True,
    "product_updates": False,
    "weekly_digest": False,
    # the keys of the existing web client's profile page
    "email_notifications": True,
    "alert_notifications": True,
    "system_updates": False,
}
AUTOMATION_DEFAULTS: dict[str, bool | int] = {
    "auto_scan_uploads": True,
    "auto_publish_versions": False,
    "retention_days": 90,
    # the keys of the existing web client's profile page
    "auto_patrol": False,
    "smart_alerts": False,
}


@dataclass(slots=True)
class UserSettings:
    user_id: str
    notifications: dict[str, bool]
    automation: dict[str, bool | int]
    timezone: str | None = None

    @classmethod
    def defaults(cls, user_id: str) -> UserSettings:
        return cls(user_id, dict(NOTIFICATION_DEFAULTS), dict(AUTOMATION_DEFAULTS))
