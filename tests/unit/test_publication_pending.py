"""When HEAD may tell a tus client ``Upload-Offset == Upload-Length`` (only once published)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orbsurv.application.packages.ports import UploadDetails, UploadRecord
from orbsurv.application.packages.uploads import _status, publication_pending
from orbsurv.domain.packages import UploadResult, UploadSession, UploadState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(state: UploadState, offset: int, protocol: str = "tus") -> UploadRecord:
    session = UploadSession(
        id="u",
        owner_id="o",
        length=10,
        offset=offset,
        state=state,
        expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
        result=UploadResult("p", "v", "0" * 64, 10) if state is UploadState.COMPLETED else None,
    )
    details = UploadDetails(package_name="pkg", version="1.0.0", file_name="p.bin")
    return UploadRecord(session, details, protocol, "k", "m")


@pytest.mark.parametrize(
    ("state", "offset", "protocol", "told"),
    [
        (UploadState.RECEIVING, 4, "tus", 4),  # bytes still coming: the true offset
        (UploadState.RECEIVING, 10, "tus", 9),  # last byte stored, not published
        (UploadState.FINALIZING, 10, "tus", 9),
        (UploadState.FINALIZING, 10, "orbsurv", 9),  # /complete began and failed
        (UploadState.RECEIVING, 10, "orbsurv", 10),  # waits for /complete: not pending
        (UploadState.COMPLETED, 10, "tus", 10),  # published: done
    ],
)
def test_only_a_published_upload_is_told_its_full_length(
    state: UploadState, offset: int, protocol: str, told: int
) -> None:
    status = _status(record(state, offset, protocol), NOW)
    assert status.resume_offset == told
    assert status.offset == offset  # the JSON status keeps the bytes stored
    assert publication_pending(record(state, offset, protocol)) == (told < offset)
