"""Errors raised by ports, shared by every adapter of that port."""

from __future__ import annotations

from orbsurv.domain.errors import DependencyUnavailable, DomainError, InvalidInput


class ObjectNotFound(DomainError):
    code = "not_found"


class ObjectTooLarge(DomainError):
    """More bytes arrived than the caller allowed (HTTP 413)."""

    code = "payload_too_large"


class InvalidMultipart(InvalidInput):
    """A multipart completion named parts that are unknown, out of order or too small."""

    code = "invalid_multipart"


class StorageUnavailable(DependencyUnavailable):
    """The object storage backend cannot be reached or refused to serve (HTTP 503)."""

    code = "storage_unavailable"


class MailDeliveryFailed(DomainError):
    """The mail server refused or could not be reached; the caller may retry later."""

    code = "mail_delivery_failed"
