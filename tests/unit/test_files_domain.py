"""The download arithmetic (RFC 9110) and file-name rules, with hypothesis for the invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.domain.errors import FieldInvalid, FieldsConflict
from orbsurv.domain.files import (
    ByteRange,
    RangeNotSatisfiable,
    Visibility,
    check_file_name,
    content_disposition,
    has_allowed_extension,
    http_date,
    if_range_holds,
    none_match,
    normalise_extensions,
    not_modified_since,
    parse_range,
    resolve_visibility,
    strong_etag,
)

sizes = st.integers(min_value=0, max_value=2**40)  # past 32 bits


@given(size=sizes, first=st.integers(0, 2**41), last=st.integers(0, 2**41))
def test_a_served_range_is_inside_the_file(size: int, first: int, last: int) -> None:
    if last < first or first >= size:
        with pytest.raises(RangeNotSatisfiable) as refused:
            parse_range(f"bytes={first}-{last}", size)
        assert refused.value.content_range == f"bytes */{size}"
        return
    served = parse_range(f"bytes={first}-{last}", size)
    assert served is not None
    assert 0 <= served.start <= served.end < size
    assert served.start == first
    assert served.end == min(last, size - 1)
    assert served.length == served.end - served.start + 1


@given(size=sizes, suffix=st.integers(1, 2**41))
def test_suffix_ranges_are_the_last_bytes(size: int, suffix: int) -> None:
    try:
        served = parse_range(f"bytes=-{suffix}", size)
    except RangeNotSatisfiable:
        assert size == 0
        return
    assert served == ByteRange(max(0, size - suffix), size - 1)


@given(size=st.integers(1, 2**40), first=st.integers(0, 2**40))
def test_open_ranges_run_to_the_end(size: int, first: int) -> None:
    try:
        served = parse_range(f"bytes={first}-", size)
    except RangeNotSatisfiable:
        assert first >= size
        return
    assert served == ByteRange(first, size - 1)
    assert served.content_range(size) == f"bytes {first}-{size - 1}/{size}"


@pytest.mark.parametrize(
    "header", ["bytes=5-2", "bytes=-0", "bytes=-", "bytes=a-b", "bytes=1-2-3", "bytes=,", "bytes="]
)
def test_malformed_bytes_ranges_are_refused(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


@pytest.mark.parametrize("header", ["bytes=0-0,", "bytes=,0-0", "bytes= , 0-0 ,, ", "bytes=,,-1"])
def test_empty_list_elements_are_skipped(header: str) -> None:
    """RFC 9110 §5.6.1: recipients accept and ignore empty list elements."""
    expected = ByteRange(99, 99) if header.endswith("-1") else ByteRange(0, 0)
    assert parse_range(header, 100) == expected


def test_several_ranges_and_other_units_mean_the_whole_body() -> None:
    assert parse_range("bytes=0-0,,5-9,", 100) is None
    assert parse_range("bytes=0-0,5-9", 100) is None
    assert parse_range("items=0-5", 100) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-0,x", 100)


def test_validators() -> None:
    etag = strong_etag("ab" * 32)
    assert etag == f'"{"ab" * 32}"'
    assert none_match(etag, etag)
    assert none_match(f'"other", W/{etag}', etag)
    assert none_match("*", etag)
    assert not none_match('"other"', etag)
    moment = datetime(2026, 11, 30, 12, 0, 5, 123, tzinfo=UTC)
    assert http_date(moment) == "Mon, 30 Nov 2026 12:00:05 GMT"
    assert if_range_holds(etag, etag, moment)
    assert not if_range_holds(f"W/{etag}", etag, moment)
    assert not if_range_holds('"other"', etag, moment)
    assert if_range_holds("Mon, 30 Nov 2026 12:00:05 GMT", etag, moment)
    assert not if_range_holds("Mon, 30 Nov 2026 12:00:04 GMT", etag, moment)
    assert not if_range_holds("not a date", etag, moment)
    assert not_modified_since("Mon, 30 Nov 2026 12:00:05 GMT", moment)  # same second
    assert not_modified_since("Tue, 01 Dec 2026 00:00:00 GMT", moment)
    assert not not_modified_since("Mon, 30 Nov 2026 12:00:04 GMT", moment)
    assert not not_modified_since("not a date", moment)


@given(name=st.text(min_size=1, max_size=100))
def test_content_disposition_is_one_safe_header_line(name: str) -> None:
    header = content_disposition(name)
    assert header.startswith('attachment; filename="')
    assert all(0x20 <= ord(c) < 0x7F for c in header)


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "a\\b", "a\x00b.zip", "..", ".", "", " ", "x" * 256],
)
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(FieldInvalid) as refused:
        check_file_name(name)
    assert refused.value.field == "file"


def test_extensions() -> None:
    allowed = frozenset({"zip", "tar"})
    assert check_file_name("Map.ZIP", allowed) == "Map.ZIP"
    for name in ("map.exe", "zip", ".zip", "map."):
        with pytest.raises(FieldInvalid):
            check_file_name(name, allowed)
    assert check_file_name("карта.bin") == "карта.bin"


def test_multi_part_extensions() -> None:
    allowed = normalise_extensions([" ZIP", ".tar.gz", "", "."])
    assert allowed == frozenset({"zip", "tar.gz"})
    for name in ("a.tar.gz", "A.TAR.GZ", "release-1.0.tar.gz", "a.zip"):
        assert check_file_name(name, allowed) == name
    for name in ("a.gz", "a.tar", "a.targz", "tar.gz", ".tar.gz", "a.tar.gz.exe"):
        with pytest.raises(FieldInvalid):
            check_file_name(name, allowed)
    only_gz = frozenset({"gz"})
    assert check_file_name("a.tar.gz", only_gz) == "a.tar.gz"
    assert check_file_name("a.gz", only_gz) == "a.gz"
    for name in ("gz", ".gz", "..gz", "a.tgz"):
        assert not has_allowed_extension(name, only_gz)


def test_visibility_from_is_public_and_visibility() -> None:
    public, private = Visibility.PUBLIC, Visibility.PRIVATE
    assert resolve_visibility(None, None) is None
    assert resolve_visibility(True, None) is public
    assert resolve_visibility(False, None) is private
    assert resolve_visibility(None, public) is public
    assert resolve_visibility(True, public) is public
    assert resolve_visibility(False, private) is private
    for flag, word in ((True, private), (False, public)):
        with pytest.raises(FieldsConflict) as refused:
            resolve_visibility(flag, word)
        assert refused.value.fields == ("is_public", "visibility")
