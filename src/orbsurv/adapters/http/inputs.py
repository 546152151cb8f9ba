"""What every request may carry: strings both databases can store, JSON of bounded depth.

PostgreSQL refuses the NUL character in ``text`` and ``jsonb`` values, and asyncpg cannot encode
a lone UTF-16 surrogate (U+D800..U+DFFF) as UTF-8; SQLite stores both. So that the two databases
agree and neither answers 500, every string that enters through the HTTP edge is screened here,
once, before any handler runs: JSON and form bodies (keys and values, at any depth), query
parameters, path parameters and the stored headers (``User-Agent``). A string that fails is a 422
naming the field.

JSON bodies may nest at most ``MAX_JSON_DEPTH`` levels (objects and arrays). Deeper bodies are a
400 ``malformed_body``: no form of ours nests more than four levels, and a decoder that recurses
would otherwise exhaust the interpreter's stack (OWASP API4:2023, unrestricted resource
consumption). Bytes that are not UTF-8 are malformed too (RFC 8259 section 8.1).

Text is compared in one spelling: every string that enters here (JSON and form keys and values,
query and path parameters) is brought to Unicode Normalization Form C (UAX #15) once, before any
handler or use case sees it, so ``Se\u0301curite\u0301`` (decomposed) and ``Sécurité`` (composed)
are one category, one search term and one name on every database (W3C Character Model:
normalise early, compare normalised). Passwords are the exception (``VERBATIM_FIELDS``): they
are hashed as they were set, so an account whose password was set before this rule still signs in.

Instants are stored in UTC: one whose offset moves it out of the years 1..9999 once in UTC
(``0001-01-01T00:00:00+14:00``) cannot be held by Python's ``datetime`` there, so ``in_utc``
refuses it with a 422 naming the field.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.exceptions import HTTPException, ValidationException

from orbsurv.domain.errors import FieldInvalid

MAX_JSON_DEPTH = 32
# Fields kept byte for byte: passwords are verified against the hash of what was typed when
# they were set (a decomposed password set earlier must keep signing in).
VERBATIM_SUFFIX = "password"
STORED_HEADERS = ("user-agent",)
_HEADER_NAMES = {"user-agent": "User-Agent"}


class MalformedBody(HTTPException):
    """A body that is not JSON we accept: answered 400 ``malformed_body``."""

    status_code = 400


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored by every database we support, or ``None`` when it can."""
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogate code points)"
    return None


def in_utc(value: datetime, field: str) -> datetime:
    """``value`` (timezone-aware) moved to UTC. Raises ``FieldInvalid`` (422 naming ``field``)
    when that leaves the years 1..9999 (``OverflowError`` in ``astimezone``)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise FieldInvalid(field, "is outside the years 1 to 9999 once in UTC") from None


def _invalid(field: str, reason: str) -> ValidationException:
    return ValidationException(extra=[{"key": field, "message": reason}])


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]" if path else f"[{key}]"
    return f"{path}.{key}" if path else key


def check_tree(value: Any) -> None:
    """Walk decoded JSON without recursion: depth at most ``MAX_JSON_DEPTH``, every key and
    string storable. Raises ``MalformedBody`` (depth) or ``ValidationException`` (the field)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if reason := unstorable(item):
                raise _invalid(path or "body", reason)
            continue
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise MalformedBody(
                    detail=f"The request body nests deeper than {MAX_JSON_DEPTH} levels."
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if reason := unstorable(key):
                        raise _invalid(_child(path, "<key>"), reason)
                    stack.append((child, _child(path, key), depth + 1))
            else:
                stack.extend((child, _child(path, i), depth + 1) for i, child in enumerate(item))


def nfc(text: str) -> str:
    """``text`` in Unicode Normalization Form C (UAX #15); the same object when it already is."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _verbatim(key: Any) -> bool:
    return isinstance(key, str) and key.lower().endswith(VERBATIM_SUFFIX)


def nfc_tree(value: Any) -> Any:
    """Decoded JSON with every key and string in NFC, except the values of password fields
    (``VERBATIM_SUFFIX``). Returns ``value`` itself when nothing changes. The depth is bounded
    by ``check_tree`` first, so the recursion is too."""
    if isinstance(value, str):
        return nfc(value)
    if isinstance(value, list):
        items = [nfc_tree(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        changed = False
        out: dict[Any, Any] = {}
        for key, child in value.items():
            new_key = nfc(key) if isinstance(key, str) else key
            new_child = child if _verbatim(key) else nfc_tree(child)
            changed = changed or new_key is not key or new_child is not child
            out[new_key] = new_child
        return out if changed else value
    return value


def nfc_pairs(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Form or query ``(name, value)`` pairs with names and string values in NFC (passwords
    kept as sent, ``VERBATIM_SUFFIX``)."""
    return [
        (nfc(name), value if _verbatim(name) or not isinstance(value, str) else nfc(value))
        for name, value in pairs
    ]


def decode_json(body: bytes) -> Any:
    """``body`` as plain JSON values, screened by ``check_tree``.

    Raises ``MalformedBody`` for text that is not JSON, not UTF-8 or nested too deep."""
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        _name_the_unstorable_field(body)
        raise MalformedBody(detail="The request body is not valid JSON.") from exc
    except RecursionError:
        raise MalformedBody(
            detail=f"The request body nests deeper than {MAX_JSON_DEPTH} levels."
        ) from None
    check_tree(value)
    return value


def _name_the_unstorable_field(body: bytes) -> None:
    """msgspec refuses a lone surrogate escape (``"\\ud800"``) as undecodable; the standard
    library accepts it, so a second look tells a 422 naming the field from malformed JSON."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return
    check_tree(value)


def check_strings(pairs: Iterable[tuple[str, Any]], *, prefix: str = "") -> None:
    """Each ``(name, value)`` whose value is a string must be storable."""
    for name, value in pairs:
        if isinstance(value, str) and (reason := unstorable(value)):
            raise _invalid(f"{prefix}{name}", reason)


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """The headers we store (``User-Agent``) must be storable: no control characters."""
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name in STORED_HEADERS:
            value = raw_value.decode("latin-1")
            if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
                raise _invalid(_HEADER_NAMES[name], "must not contain control characters")
