"""Request and response bodies shared across controllers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request

from orbsurv.adapters.validation import checked_email
from orbsurv.domain.identity import User

# RFC 5321 caps a path at 256 octets, so an address is at most 254 characters (the server's rule).
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        examples=["ada@example.com"],
        description="Compared lower-cased; a local part or domain label that mixes scripts "
        "(a Cyrillic letter among Latin ones, Unicode TR39) is 422 `mixed_script`",
        extra_json_schema={"format": "email"},
    ),
]
# A password the account already has (sign-in, confirmations): checked against its hash, never
# against the policy, which may have changed since it was set; the cap only stops absurd bodies
# before they are decoded.
Password = Annotated[
    str, msgspec.Meta(max_length=4096, description="The account's password, as it was set")
]
# A new password: the schema says the policy (8..128, NIST SP 800-63B 3.1.1.2), while decoding
# still takes up to 4096 so a too-long one gets the policy's precise 422 message.
NewPassword = Annotated[
    str,
    msgspec.Meta(
        max_length=4096,
        description="8 to 128 characters; any characters; common passwords are refused",
        extra_json_schema={"minLength": 8, "maxLength": 128},
    ),
]
Name = Annotated[str, msgspec.Meta(max_length=255)]
# An instant: RFC 3339 with an offset (``Z`` or ``+02:00``). Without one the instant is unknown,
# and PostgreSQL's timestamptz refuses it while SQLite would store it: 422 on both.
Instant = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 date-time with an offset (Z or ±hh:mm)")
]
# The end of the text, in a pattern both engines read alike: Python's ``$`` also matches before
# a final newline (so ``"ada\n"`` would pass ``^[a-z]+$``), JSON Schema's (ECMA-262) does not.
# ``$(?!\n)`` is the true end in both, so what the schema promises is what msgspec enforces.
END = r"$(?!\n)"


def exact(pattern: str) -> str:
    """``pattern`` with every ``$`` anchor made the true end of the text (``END``)."""
    return pattern.replace("$", END)


Username = Annotated[
    str,
    msgspec.Meta(
        pattern=exact(r"^$|^[A-Za-z0-9_.-]{3,64}$"),
        max_length=64,
        description="3 to 64 ASCII letters, digits, '.', '_' or '-'; compared case-insensitively",
    ),
]


def blank_to_none(value: str | None) -> str | None:
    """Browser forms send ``""`` for empty inputs: an empty optional field counts as absent."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


class Accepted(msgspec.Struct, frozen=True):
    """202: the request was taken; ``message`` says what happens next."""

    status: Literal["accepted"]
    message: str


def request_email(request: Request[Any, Any, Any], value: str, *, field: str = "email") -> str:
    """``checked_email`` under the app's rule for special-use domains (the composition root
    sets ``allow_special_use_email`` in the app state from ``ALLOW_SPECIAL_USE_EMAIL_DOMAINS``)."""
    allow = bool(request.app.state.get("allow_special_use_email", False))
    return checked_email(value, field=field, allow_special_use=allow)


class UserOut(msgspec.Struct, frozen=True):
    id: str
    email: str
    username: str | None
    name: str | None
    organization: str | None
    role: str
    email_verified: bool
    otp_enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            name=user.name,
            organization=user.organization,
            role=user.role.value,
            email_verified=user.email_verified,
            otp_enabled=user.otp_enabled,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
