"""Errors raised by ports, shared by every adapter of that port."""

from __future__ import annotations

from orbsurv.domain.errors import DomainError


class ObjectNotFound(DomainError):
    code = "not_found"


class ObjectTooLarge(DomainError):
    code = "payload_too_large"


class MailDeliveryFailed(DomainError):
    """The mail server refused or could not be reached; the caller may retry later."""

    code = "mail_delivery_failed"
