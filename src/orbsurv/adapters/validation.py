"""Input checks shared by every driving adapter (HTTP schemas, the CLI)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import EMAIL_MAX_LENGTH, normalise_email


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
