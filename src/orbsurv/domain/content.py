"""The knowledge base: resources (articles, API notes, support answers, product updates).

A resource is found by its slug. Slugs are normalised (lower case, ASCII letters, digits and
single hyphens) so ``Getting-Started`` and ``getting-started`` are one slug: a case variant of an
existing slug is a conflict, and a look-up ignores case. A slug left out is made from the title.
Links are ``http`` or ``https`` only (no ``javascript:``, ``data:`` or ``file:``). The body is
markdown kept as text and returned raw; clients render it (and must sanitise what they render).
"""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from orbsurv.domain.errors import FieldInvalid

SLUG_MAX_LENGTH = 120
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
BODY_MAX_LENGTH = 100_000
URL_MAX_LENGTH = 2048
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class ResourceType(enum.Enum):
    API = "api"
    KNOWLEDGE = "knowledge"
    SUPPORT = "support"
    UPDATES = "updates"


def storable(value: str, field_name: str) -> str:
    """``value`` unchanged, or ``FieldInvalid`` when a database cannot store it: PostgreSQL
    refuses NUL in text, and a lone UTF-16 surrogate cannot be encoded as UTF-8."""
    if "\x00" in value:
        raise FieldInvalid(field_name, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldInvalid(field_name, "must be valid Unicode (no lone surrogates)") from None
    return value


def slugify(title: str) -> str:
    """A slug made from a title: accents dropped, every run of other characters a hyphen."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:SLUG_MAX_LENGTH].strip("-")
    return slug or "resource"


def normalise_slug(value: str, field_name: str = "slug") -> str:
    """The canonical form of a slug someone typed (trimmed, lower case), or ``FieldInvalid``
    when it is not letters and digits separated by single hyphens, at most 120 characters."""
    slug = value.strip().lower()
    if not slug or len(slug) > SLUG_MAX_LENGTH or not _SLUG.fullmatch(slug):
        raise FieldInvalid(
            field_name,
            "must be 1 to 120 letters, digits and single hyphens (like 'getting-started')",
        )
    return slug


def checked_url(value: str, field_name: str = "url") -> str:
    """An absolute ``http``/``https`` URL with a host, at most 2048 characters; any other
    scheme (``javascript:``, ``data:``, ``file:``) is ``FieldInvalid``."""
    url = storable(value.strip(), field_name)
    if len(url) > URL_MAX_LENGTH:
        raise FieldInvalid(field_name, f"must be at most {URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise FieldInvalid(field_name, "is not a URL") from None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise FieldInvalid(field_name, "must be an absolute http or https URL")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise FieldInvalid(field_name, "must not contain spaces or control characters")
    return url


@dataclass(slots=True)
class Resource:
    slug: str
    title: str
    type: ResourceType
    description: str
    created_at: datetime
    updated_at: datetime
    url: str | None = None
    body: str = ""
    published: bool = False
    created_by: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def visible_to(self, can_manage: bool) -> bool:
        """Drafts are visible to content managers only."""
        return self.published or can_manage


@dataclass(frozen=True, slots=True)
class ResourceDraft:
    """What an editor sends to create a resource, already validated field by field."""

    title: str
    type: ResourceType
    description: str
    slug: str | None = None
    url: str | None = None
    body: str = ""
    published: bool = False


@dataclass(frozen=True, slots=True)
class ResourceChange:
    """A partial update: ``None`` keeps a field; ``clear_url`` removes the link."""

    title: str | None = None
    slug: str | None = None
    type: ResourceType | None = None
    description: str | None = None
    url: str | None = None
    clear_url: bool = False
    body: str | None = None
    published: bool | None = None

    def apply(self, resource: Resource, now: datetime) -> list[str]:
        """Change ``resource`` in place; the names of the fields that really changed."""
        changed: list[str] = []
        for name in ("title", "slug", "type", "description", "body", "published"):
            value = getattr(self, name)
            if value is not None and getattr(resource, name) != value:
                setattr(resource, name, value)
                changed.append(name)
        url = None if self.clear_url else self.url
        if (self.clear_url or self.url is not None) and resource.url != url:
            resource.url = url
            changed.append("url")
        if changed:
            resource.updated_at = now
        return changed
