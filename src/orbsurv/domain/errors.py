"""Domain errors.

Every error carries a stable snake_case ``code``; the HTTP adapter maps the class to a status in
one place. Messages are written for the person who will read them and never include secrets.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: something the caller asked for cannot be done."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The request is well-formed but semantically wrong (HTTP 400)."""

    code = "invalid_input"


class FieldInvalid(DomainError):
    """One named field breaks a rule (HTTP 422)."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class MixedScript(FieldInvalid):
    """An identifier mixes writing systems the way look-alikes do (HTTP 422 ``mixed_script``):
    ``admin@example.com`` spelt with a Cyrillic a (U+0430) would be an account beside ``admin@...``
    (Unicode TR39, section 5.2, "Highly Restrictive")."""

    code = "mixed_script"


class FieldsConflict(FieldInvalid):
    """Two or more fields that say the same thing in different words disagree (HTTP 422), e.g.
    ``is_public: true`` with ``visibility: private``. ``fields`` names them all (``field`` is
    the first); the HTTP adapter reports one error per field and nothing is changed."""

    def __init__(self, fields: tuple[str, ...], message: str) -> None:
        super().__init__(fields[0], message)
        self.fields = fields


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


class DependencyUnavailable(DomainError):
    """A backing service (database, cache, storage, worker pool) cannot serve right now."""

    code = "dependency_unavailable"
