"""Input checks shared by every driving adapter (HTTP schemas, the CLI)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import EMAIL_MAX_LENGTH, normalise_email


def checked_header_text(value: str, *, field: str) -> str:
    """``value`` for a mail header (Subject, a display name), or ``FieldInvalid`` naming
    ``field`` when it holds a line break or another control character: CR/LF would end the
    header and start a new one (header injection, RFC 5322 section 2.2)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FieldInvalid(field, "must be one line without control characters (no CR or LF)")
    return value


def checked_email(value: str, *, field: str = "email") -> str:
    """The normalised address, or ``FieldInvalid`` naming ``field``. No DNS look-up."""
    candidate = value.strip()
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise FieldInvalid(field, f"must be at most {EMAIL_MAX_LENGTH} characters")
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldInvalid(field, f"is not a valid email address ({exc})") from None
    return normalise_email(validated.normalized)
