"""Query parameters of the shared pagination: ``page``, ``page_size`` (alias ``limit``),
``cursor``."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated

from litestar.di import Provide
from litestar.params import Parameter

from orbsurv.adapters.http.inputs import unstorable
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.pagination import Cursor, PageRequest

MAX_PAGE = 1_000_000


def provide_page_request(
    page: Annotated[
        int | None, Parameter(description="1-based page; values below 1 mean 1")
    ] = None,
    page_size: Annotated[
        int | None, Parameter(description="Items per page, clamped to 1..100")
    ] = None,
    limit: Annotated[int | None, Parameter(description="Alias of page_size")] = None,
) -> PageRequest:
    size = page_size if page_size is not None else limit
    request = PageRequest.clamped(page, size)
    if request.page > MAX_PAGE:
        return PageRequest(page=MAX_PAGE, page_size=request.page_size)
    return request


def provide_stream_page(
    page: Annotated[
        int | None,
        Parameter(
            description=(
                "Not used by keyset streams: only 1 (or absent) is accepted; follow "
                "`next_cursor` with `cursor` for the next page"
            ),
        ),
    ] = None,
    page_size: Annotated[
        int | None, Parameter(description="Items per page, clamped to 1..100")
    ] = None,
    limit: Annotated[int | None, Parameter(description="Alias of page_size")] = None,
) -> PageRequest:
    """The page size of a keyset stream. ``page`` above 1 is a 422 that names ``cursor``, rather
    than silently answering the first page again."""
    if page is not None and page > 1:
        raise FieldInvalid(
            "page",
            "this list pages by keyset: pass the previous answer's next_cursor as cursor",
        )
    return PageRequest.clamped(1, page_size if page_size is not None else limit)


KEYSET_PAGING = {"paging": Provide(provide_stream_page, sync_to_thread=False)}
"""Route dependencies of every keyset-paged list (one that takes ``cursor``): its ``paging``
refuses ``page`` above 1 instead of answering the first page again. A convention test checks
that every route with a ``cursor`` parameter uses it."""


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.created_at.isoformat(), cursor.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> Cursor:
    """The ``[instant, id]`` a ``next_cursor`` carries. A cursor is client input: one whose id
    the database cannot store (NUL, a lone surrogate) or whose instant leaves the years
    1..9999 in UTC is refused like any other forgery (``FieldInvalid`` on ``cursor``, 422)."""
    try:
        padded = value + "=" * (-len(value) % 4)
        created_at, id_ = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        moment = datetime.fromisoformat(created_at)
        if not isinstance(id_, str) or moment.tzinfo is None or unstorable(id_) is not None:
            raise ValueError(value)
        moment = moment.astimezone(UTC)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError):
        raise FieldInvalid("cursor", "is not a cursor this service issued") from None
    return Cursor(created_at=moment, id=id_)


def provide_cursor(
    cursor: Annotated[
        str | None, Parameter(description="Opaque keyset cursor from next_cursor", max_length=512)
    ] = None,
) -> Cursor | None:
    return decode_cursor(cursor) if cursor else None
