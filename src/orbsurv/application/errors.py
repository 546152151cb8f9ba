"""Errors raised by ports, shared by every adapter of that port."""

from __future__ import annotations

from orbsurv.domain.errors import DependencyUnavailable, DomainError, FieldInvalid, InvalidInput


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


class DatabaseUnavailable(DependencyUnavailable):
    """The database cannot be reached, refused a connection, or did not answer within its
    timeout (HTTP 503 ``dependency_unavailable``)."""

    code = "dependency_unavailable"


class StorageFull(StorageUnavailable):
    """The disk under the object storage is full (ENOSPC) or over its quota (EDQUOT): HTTP 507
    ``insufficient_storage``. Nothing partial is kept."""

    code = "insufficient_storage"


class MailDeliveryFailed(DomainError):
    """The mail server refused or could not be reached; the caller may retry later."""

    code = "mail_delivery_failed"


class ScannerUnavailable(DependencyUnavailable):
    """The malware scanner cannot be reached or gave no verdict (HTTP 503): nothing is kept
    unscanned."""

    code = "scanner_unavailable"


class MalwareDetected(FieldInvalid):
    """The scanned bytes carry malware (HTTP 422); ``signature`` names what was found."""

    code = "malware_detected"

    def __init__(self, field: str, signature: str) -> None:
        super().__init__(field, f"The file carries malware ({signature}); it was not kept.")
        self.signature = signature


class QuotaExceeded(ObjectTooLarge):
    """The upload does not fit in the user's storage quota (HTTP 413)."""

    code = "quota_exceeded"
