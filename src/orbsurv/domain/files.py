"""Files: projects, file names, and the HTTP download rules as pure arithmetic.

Downloads follow RFC 9110: byte ranges (§14.1.2), 206 and ``Content-Range`` (§14.4), 416 with
``Content-Range: bytes */size`` (§15.5.17), validators (``ETag`` §8.8.3, ``Last-Modified``
§8.8.2) and conditional requests (``If-None-Match`` §13.1.2, ``If-Modified-Since`` §13.1.3,
``If-Range`` §13.1.5, evaluated in the order of §13.2.2). ``Content-Disposition`` follows
RFC 6266 with RFC 8187 ``filename*``.

Policy choices, each allowed by RFC 9110:
* several ranges in one ``Range`` header are answered with the whole body (200), never
  ``multipart/byteranges`` (§14.2 lets a server ignore ``Range``);
* a ``Range`` header in the ``bytes`` unit that does not parse (``bytes=5-2``, ``bytes=x``,
  ``bytes=,`` with no range at all) or that no byte satisfies (``bytes=-0``, a start past the
  end) is answered 416, so a client learns at once that it asked for something impossible;
  another unit is ignored (200). Empty list elements are skipped (§5.6.1): ``bytes=0-0,`` is
  the first byte.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

from orbsurv.domain.errors import FieldInvalid, FieldsConflict

MAX_FILE_NAME = 255  # characters: what common filesystems accept
# Unicode's bidirectional formatting characters (UAX #9 §2): in a file name they make
# "invoice\u202efdp.exe" display as "invoiceexe.pdf" (UTS #39 / TR #36 "bidi spoofing").
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
NAME_MAX = 200
DESCRIPTION_MAX = 5000
VERSION_MAX = 64


class Visibility(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"


def resolve_visibility(is_public: bool | None, visibility: Visibility | None) -> Visibility | None:
    """One visibility from the two ways a client may say it: ``is_public`` (true/false) or
    ``visibility`` (public/private). Either alone decides; both must agree (``true`` with
    ``public``, ``false`` with ``private``), else ``FieldsConflict`` on both fields (HTTP 422)
    rather than one silently winning; neither gives ``None`` (no choice made)."""
    from_flag = None
    if is_public is not None:
        from_flag = Visibility.PUBLIC if is_public else Visibility.PRIVATE
    if from_flag is not None and visibility is not None and from_flag is not visibility:
        raise FieldsConflict(
            ("is_public", "visibility"),
            f"is_public ({str(is_public).lower()}) and visibility ({visibility.value}) disagree: "
            "send one of them, or values that agree. Nothing was changed.",
        )
    return from_flag or visibility


@dataclass(slots=True)
class Project:
    """One uploaded project file and its description. ``size`` in bytes; ``sha256`` hex."""

    id: str
    owner_id: str
    name: str
    description: str
    version: str | None
    visibility: Visibility
    file_name: str
    object_key: str
    size: int
    sha256: str
    content_type: str
    downloads: int
    created_at: datetime
    updated_at: datetime

    def visible_to(self, user_id: str | None, *, is_admin: bool = False) -> bool:
        """Public projects are visible to anyone; private ones to their owner and admins."""
        return self.visibility is Visibility.PUBLIC or self.owner_id == user_id or is_admin

    def editable_by(self, user_id: str) -> bool:
        return self.owner_id == user_id


def _clean_text(field: str, value: str, limit: int, *, required: bool) -> str:
    """``value`` trimmed and in Unicode NFC (UAX #15: one spelling per text, whichever way the
    client composed it; multipart fields stream past the edge that normalises the rest).
    Raises ``FieldInvalid`` naming ``field``: unstorable, missing when ``required``, or longer
    than ``limit`` characters (counted after normalisation)."""
    if any(unicodedata.category(c) == "Cs" for c in value) or "\x00" in value:
        raise FieldInvalid(field, "contains characters that cannot be stored")
    value = unicodedata.normalize("NFC", value.strip())
    if required and not value:
        raise FieldInvalid(field, "is required")
    if len(value) > limit:
        raise FieldInvalid(field, f"is longer than {limit} characters")
    return value


def check_project_name(name: str) -> str:
    return _clean_text("name", name, NAME_MAX, required=True)


def check_description(description: str) -> str:
    return _clean_text("description", description, DESCRIPTION_MAX, required=False)


def check_version(version: str | None) -> str | None:
    if version is None:
        return None
    return _clean_text("version", version, VERSION_MAX, required=False) or None


def normalise_extensions(entries: Iterable[str]) -> frozenset[str]:
    """The configured extensions (``ALLOWED_PROJECT_EXTENSIONS`` items such as ``"ZIP"``,
    ``".tar.gz"``) as ``check_file_name`` reads them: trimmed, lower-case, without leading
    dots; empty items are dropped. ``"tar.gz"`` stays one multi-part extension."""
    cleaned = (entry.strip().lstrip(".").lower() for entry in entries)
    return frozenset(entry for entry in cleaned if entry)


def has_allowed_extension(name: str, allowed_extensions: frozenset[str]) -> bool:
    """Whether ``name`` ends with ``"." + extension`` for one of ``allowed_extensions``
    (lower-case, no leading dot, see ``normalise_extensions``), compared case-insensitively,
    with something other than dots before it. So ``tar.gz`` accepts ``a.tar.gz`` (not
    ``a.gz``), ``gz`` accepts ``a.gz`` and ``a.tar.gz``, and ``zip`` refuses ``zip``, ``.zip``
    and ``..zip`` (a hidden file's name is not an extension)."""
    lowered = name.lower()
    for extension in allowed_extensions:
        suffix = "." + extension
        if lowered.endswith(suffix) and lowered[: -len(suffix)].strip("."):
            return True
    return False


def check_file_name(name: str, allowed_extensions: frozenset[str] = frozenset()) -> str:
    """A file name as a client sent it, refused (``FieldInvalid`` on ``file``) unless it is a
    plain name: no path separators, no control characters or NUL, no bidirectional
    formatting characters (``BIDI_CONTROLS``), not only dots, at most 255 characters, and (when
    ``allowed_extensions`` is not empty) ending in one of the allowed extensions, multi-part
    ones such as ``tar.gz`` included (``has_allowed_extension``). Names are never rewritten: a
    refused name is the client's to fix."""
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in name):
        raise FieldInvalid("file", "The file name contains control characters.")
    if any(c in BIDI_CONTROLS for c in name):
        raise FieldInvalid(
            "file", "The file name contains bidirectional formatting characters (U+202E ...)."
        )
    stripped = name.strip()
    if not stripped:
        raise FieldInvalid("file", "The file needs a name.")
    if "/" in stripped or "\\" in stripped:
        raise FieldInvalid("file", "The file name must not contain path separators.")
    if set(stripped) == {"."}:
        raise FieldInvalid("file", "The file name must not be only dots.")
    if len(stripped) > MAX_FILE_NAME:
        raise FieldInvalid("file", f"The file name is longer than {MAX_FILE_NAME} characters.")
    if allowed_extensions and not has_allowed_extension(stripped, allowed_extensions):
        allowed = ", ".join(sorted(allowed_extensions))
        raise FieldInvalid("file", f"Files of this type are not accepted (allowed: {allowed}).")
    return stripped


# --- downloads (RFC 9110) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start..end`` inclusive, both within the representation."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(Exception):
    """The ``Range`` cannot be served: answer 416 with ``Content-Range: bytes */size``."""

    def __init__(self, size: int) -> None:
        super().__init__(f"bytes */{size}")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


_RANGE_SPEC = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")
_BEYOND_ANY_SIZE = 10**20  # more bytes than any representation (sizes are 64-bit)


def _position(digits: str) -> int:
    """A byte position or suffix length of any number of ASCII digits. Past 20 significant
    digits it is simply larger than any size (``int`` refuses strings past 4300 digits)."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 20 else _BEYOND_ANY_SIZE


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one range to serve from a ``Range`` header for a representation of ``size`` bytes.

    ``None`` means serve the whole body (another unit, or several ranges). Raise
    ``RangeNotSatisfiable`` for a malformed or unsatisfiable ``bytes`` range.

    Empty list elements are skipped, as RFC 9110 §5.6.1 requires of recipients
    (``bytes=0-0,`` and ``bytes=,0-0`` are the first byte). A range set with no element left
    (``bytes=,``) is malformed: the grammar (``1#range-spec``, §14.1.2) needs one, so 416."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    specs = [element for element in spec.split(",") if element.strip(" \t")]
    if len(specs) > 1:
        if all(_RANGE_SPEC.match(s) for s in specs):
            return None
        raise RangeNotSatisfiable(size)
    if not specs:
        raise RangeNotSatisfiable(size)
    match = _RANGE_SPEC.match(specs[0])
    if match is None:
        raise RangeNotSatisfiable(size)
    first, last = match.groups()
    if not first and not last:
        raise RangeNotSatisfiable(size)
    if not first:  # suffix: the last N bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = _position(first)
    end = _position(last) if last else size - 1
    if end < start or start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size - 1))


def strong_etag(sha256: str) -> str:
    """A quoted strong entity tag from the SHA-256 of the bytes (RFC 9110 §8.8.3)."""
    return f'"{sha256}"'


def _etags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def none_match(header: str, etag: str) -> bool:
    """``True`` when ``If-None-Match`` matches (weak comparison, §13.1.2): answer 304."""
    tags = _etags(header)
    return "*" in tags or etag.removeprefix("W/") in tags


def not_modified_since(header: str, last_modified: datetime) -> bool:
    """``True`` when ``If-Modified-Since`` holds a valid HTTP-date at or after our
    ``Last-Modified`` (whole seconds, §13.1.3): answer 304. An invalid date is ignored (the
    field is then as if absent). The caller evaluates it only for GET and HEAD without
    ``If-None-Match`` (§13.2.2)."""
    try:
        when = parsedate_to_datetime(header.strip())
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return int(last_modified.timestamp()) <= int(when.timestamp())


def http_date(moment: datetime) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), whole seconds."""
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def if_range_holds(header: str, etag: str, last_modified: datetime) -> bool:
    """``True`` when the ``If-Range`` validator still matches (§13.1.5): a strong ETag equal to
    ours, or an HTTP-date equal to our ``Last-Modified``. Otherwise the whole body is sent."""
    value = header.strip()
    if value.startswith(("W/", '"')):
        return value == etag  # strong comparison; weak tags never match
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return when.tzinfo is not None and int(when.timestamp()) == int(last_modified.timestamp())


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` fallback and, for other names, an RFC 8187
    ``filename*`` (RFC 6266 §4.3)."""
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in file_name)
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != file_name:
        header += f"; filename*=UTF-8''{quote(file_name, safe='')}"
    return header


# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (obs-text left out: non-ASCII bytes are obsolete
# in fields and cannot travel in an S3 Content-Type), §5.6.3 OWS, §5.6.6 parameters.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*(?:{_TCHARS}=(?:{_TCHARS}|{_QUOTED}))?)*",
)
MAX_MEDIA_TYPE = 255  # characters


def check_media_type(value: str, field: str) -> str:
    """``value`` when it is a media type by the grammar of RFC 9110 §8.3.1
    (``type "/" subtype *( OWS ";" OWS [ parameter ] )``, names are tokens, parameter values
    tokens or quoted strings), else ``FieldInvalid`` naming ``field``.

    A client-supplied media type is stored and handed to storage as a header (S3
    ``Content-Type``), so it is checked before any adapter sees it: CR, LF, other controls and
    non-ASCII characters (RFC 9110's obsolete ``obs-text``) are refused, and so is anything longer
    than ``MAX_MEDIA_TYPE`` characters.
    """
    if len(value) > MAX_MEDIA_TYPE:
        raise FieldInvalid(field, f"must be at most {MAX_MEDIA_TYPE} characters")
    if _MEDIA_TYPE.fullmatch(value) is None:
        raise FieldInvalid(
            field, "must be a media type such as application/zip (RFC 9110 section 8.3.1)"
        )
    return value
