"""Rules for what an upload declares: names, file names, text PostgreSQL can store, and the
version through the ``VersionScheme`` port (SemVer 2.0.0 in production).

``latest`` is the version of highest precedence in the scheme, never the last one uploaded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

from orbsurv.application.packages.ports import UploadDetails, VersionScheme
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.files import check_media_type
from orbsurv.domain.packages import check_sha256

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TEXT = {"description": 10_000, "category": 64, "language": 64, "content_type": 255}
T = TypeVar("T")


def storable(value: str, field: str, limit: int) -> str:
    """``value`` in Unicode NFC (UAX #15: one spelling of a category, a name or a description
    whichever way the client composed it; multipart fields and tus ``Upload-Metadata`` reach
    here without passing the edge that normalises JSON bodies), unless PostgreSQL cannot store
    it (NUL, lone surrogates) or it is longer than ``limit`` characters.

    Raises ``FieldInvalid`` naming ``field``."""
    if "\x00" in value:
        raise FieldInvalid(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldInvalid(field, "must be valid Unicode text (no lone surrogates)") from None
    value = unicodedata.normalize("NFC", value)
    if len(value) > limit:
        raise FieldInvalid(field, f"must be at most {limit} characters")
    return value


def latest(scheme: VersionScheme, versions: Iterable[tuple[str, T]]) -> T | None:
    """The item whose version has the highest precedence in ``scheme``."""
    items = list(versions)
    best = scheme.highest(text for text, _ in items)
    return next((item for text, item in items if text == best), None)


def safe_file_name(value: str, field: str = "file_name") -> str:
    """The last path segment of ``value``, without control characters; ``FieldInvalid`` when
    nothing usable is left (empty, only dots) or it is longer than 255 characters."""
    storable(value, field, 4096)
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if not name or set(name) <= {"."}:
        raise FieldInvalid(field, "must be a file name")
    if len(name) > 255:
        raise FieldInvalid(field, "must be at most 255 characters")
    return name


def check_package_name(value: str, field: str = "package_name") -> str:
    storable(value, field, 128)
    name = value.strip()
    if not NAME.match(name):
        raise FieldInvalid(
            field,
            "must be 1-128 characters: letters, digits, '.', '_' or '-', starting with "
            "a letter or digit",
        )
    return name


def optional_text(value: str | None, field: str, limit: int | None = None) -> str | None:
    """``None`` for an absent or blank value, else ``storable`` trimmed text of at most
    ``limit`` characters (``MAX_TEXT[field]`` by default)."""
    if value is None or value.strip() == "":
        return None
    return storable(value.strip(), field, MAX_TEXT[field] if limit is None else limit)


def _media_type(value: str | None) -> str | None:
    """The declared media type, checked by RFC 9110's grammar (``check_media_type``)."""
    text = optional_text(value, "content_type")
    return None if text is None else check_media_type(text, "content_type")


def check_details(details: UploadDetails, scheme: VersionScheme) -> UploadDetails:
    """The declaration, normalised; raises ``FieldInvalid`` naming the first bad field."""
    return replace(
        details,
        package_name=check_package_name(details.package_name),
        version=scheme.normalise(storable(details.version, "version", 128)),
        file_name=safe_file_name(details.file_name),
        description=storable(details.description or "", "description", MAX_TEXT["description"]),
        category=optional_text(details.category, "category"),
        language=optional_text(details.language, "language"),
        content_type=_media_type(details.content_type),
        sha256=check_sha256(details.sha256),
    )
