"""The upload session's offset arithmetic: no gap, no overlap, never past the declared size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.adapters.versions import SemverScheme
from orbsurv.application.packages.versions import latest, storable
from orbsurv.domain.errors import DomainError, FieldInvalid
from orbsurv.domain.packages import (
    OffsetMismatch,
    UploadClosed,
    UploadExpired,
    UploadIncomplete,
    UploadResult,
    UploadSession,
    UploadState,
    UploadTooLarge,
)

SEMVER = SemverScheme()
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def new_session(length: int) -> UploadSession:
    return UploadSession(
        id="u1",
        owner_id="o1",
        length=length,
        offset=0,
        state=UploadState.CREATED,
        expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
    )


# One client step: a chunk sent at some offset, of which only a prefix may arrive (an
# interruption), or a retry from a stale offset, or an early/late completion attempt.
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.integers(-3, 3),  # offset relative to the true offset (0 = correct)
            st.integers(0, 70),  # bytes the client sends
            st.integers(0, 70),  # bytes that arrive before an interruption (clamped)
        ),
        st.tuples(st.just("complete"), st.just(0), st.just(0), st.just(0)),
        st.tuples(st.just("abort"), st.just(0), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@given(length=st.integers(1, 200), plan=steps)
def test_no_sequence_makes_a_gap_an_overlap_or_a_size_past_the_declared_one(
    length: int, plan: list[tuple[str, int, int, int]]
) -> None:
    session = new_session(length)
    source = bytes(i % 251 for i in range(length))  # what the client uploads
    stored = bytearray()  # what the server stored, in order
    for kind, shift, sent, arrived in plan:
        before = (session.offset, session.state)
        if kind == "append":
            offset = max(0, session.offset + shift)
            n = min(sent, arrived)
            try:
                session.append(offset, n, NOW)
            except (OffsetMismatch, UploadTooLarge, UploadClosed):
                assert (session.offset, session.state) == before  # a refusal changes nothing
                continue
            stored.extend(source[offset : offset + n])
        elif kind == "complete":
            try:
                session.begin_finalizing(NOW)
            except (UploadIncomplete, UploadClosed):
                assert (session.offset, session.state) == before
                continue
            assert session.offset == length
            session.complete(UploadResult("p", "v", "0" * 64, length))
        else:
            try:
                session.abort()
            except UploadClosed:
                assert session.state is UploadState.COMPLETED
        # the invariants after every step
        assert 0 <= session.offset <= length
        assert len(stored) == session.offset
        assert bytes(stored) == source[: session.offset]  # no gap, no overlap
    if session.state is UploadState.COMPLETED:
        assert bytes(stored) == source


@given(length=st.integers(1, 10**13), cut=st.integers(0, 10**13))
def test_offsets_are_exact_beyond_32_bits(length: int, cut: int) -> None:
    session = new_session(length)
    first = min(cut, length)
    assert session.append(0, first, NOW) == first
    assert session.append(first, length - first, NOW) == length
    with pytest.raises(UploadTooLarge):
        session.append(length, 1, NOW)


def test_a_mismatched_offset_names_the_current_one() -> None:
    session = new_session(10)
    session.append(0, 4, NOW)
    with pytest.raises(OffsetMismatch) as caught:
        session.append(2, 2, NOW)
    assert caught.value.expected == 4


def test_expired_sessions_take_nothing_and_do_not_complete() -> None:
    session = new_session(10)
    later = NOW + timedelta(hours=2)
    with pytest.raises(UploadExpired):
        session.append(0, 1, later)
    session.append(0, 10, NOW)
    with pytest.raises(UploadExpired):
        session.begin_finalizing(later)
    assert session.expire(later)
    assert session.state is UploadState.EXPIRED


def test_completion_is_idempotent_while_finalizing_and_keeps_its_result() -> None:
    session = new_session(3)
    session.append(0, 3, NOW)
    session.begin_finalizing(NOW)
    session.begin_finalizing(NOW)  # a retry
    result = UploadResult("p", "v", "a" * 64, 3)
    session.complete(result)
    assert session.result == result
    with pytest.raises(UploadClosed):
        session.abort()


def test_an_empty_declaration_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        new_session(0)


versions = st.builds(
    lambda major, minor, patch, pre: f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else ""),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.sampled_from(["", "alpha", "alpha.1", "beta", "rc.1", "rc.2"]),
)


@given(st.lists(versions, min_size=1, max_size=20, unique=True))
def test_latest_is_the_highest_precedence_not_the_last(items: list[str]) -> None:
    best = latest(SEMVER, ((v, v) for v in items))
    assert best is not None
    for other in items:
        assert SEMVER.highest([best, other]) == best


def test_prereleases_rank_below_their_release() -> None:
    assert latest(SEMVER, [(v, v) for v in ["1.0.0", "1.0.0-rc.1", "0.9.9"]]) == "1.0.0"
    assert latest(SEMVER, [(v, v) for v in ["2.0.0-alpha", "1.9.0"]]) == "2.0.0-alpha"


@pytest.mark.parametrize("bad", ["1", "1.2", "v1.2.3", "01.2.3", "1.2.3-", "a.b.c", "1.2.3\x00"])
def test_versions_that_are_not_semver_are_refused(bad: str) -> None:
    with pytest.raises(FieldInvalid) as caught:
        SEMVER.normalise(storable(bad, "version", 128))
    assert caught.value.field == "version"
    assert isinstance(caught.value, DomainError)
