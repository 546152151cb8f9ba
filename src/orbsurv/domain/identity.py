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


_ROLE_RANK = {Role.USER: 0, Role.ADMIN: 1, Role.DEV: 2}


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
