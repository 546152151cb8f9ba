from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.adapters.http.pagination import (
    MAX_PAGE,
    decode_cursor,
    encode_cursor,
    provide_page_request,
)
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, Page, PageRequest

ints = st.one_of(st.none(), st.integers(min_value=-(10**30), max_value=10**30))


@given(page=ints, page_size=ints, limit=ints)
def test_page_requests_always_clamp_into_range(
    page: int | None, page_size: int | None, limit: int | None
) -> None:
    request = provide_page_request(page, page_size, limit)
    assert 1 <= request.page <= MAX_PAGE
    assert 1 <= request.page_size <= MAX_PAGE_SIZE
    assert request.offset == (request.page - 1) * request.page_size
    assert request.offset < 2**63  # fits a BIGINT on every backend


def test_defaults_and_the_limit_alias() -> None:
    assert provide_page_request() == PageRequest(1, DEFAULT_PAGE_SIZE)
    assert provide_page_request(limit=5).page_size == 5
    assert provide_page_request(page_size=7, limit=5).page_size == 7  # the name wins
    assert provide_page_request(page=0, page_size=0) == PageRequest(1, 1)
    assert provide_page_request(page_size=1000).page_size == MAX_PAGE_SIZE


@given(total=st.integers(0, 10**6), size=st.integers(1, MAX_PAGE_SIZE))
def test_pages_cover_every_item_exactly(total: int, size: int) -> None:
    page = Page(items=[], total=total, page=1, page_size=size)
    assert (page.pages - 1) * size < total <= page.pages * size or (total == 0 == page.pages)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


# ids come from the database: text it can store (no NUL, no lone surrogates)
stored_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


@given(moment=moments, id_=stored_ids)
def test_cursor_round_trip(moment: datetime, id_: str) -> None:
    cursor = Cursor(created_at=moment, id=id_)
    assert decode_cursor(encode_cursor(cursor)) == cursor


@pytest.mark.parametrize(
    "garbage",
    ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTAxLTAxIiwieCJd", "W10", "e30", "\u00e9\u00e9"],
)
def test_garbage_cursors_are_a_field_error(garbage: str) -> None:
    with pytest.raises(FieldInvalid) as caught:
        decode_cursor(garbage)
    assert caught.value.field == "cursor"
