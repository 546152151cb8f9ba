"""A failing readiness probe is one log line: the dependency and the exception's class."""

from __future__ import annotations

import logging

import pytest

from orbsurv.application.system.readiness import CheckReadiness


class Refusing:
    name = "database"

    async def check(self) -> None:
        try:
            try:
                raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")
            except OSError as exc:
                raise RuntimeError("pool: could not connect to 10.0.0.5") from exc
        except RuntimeError as exc:
            raise ValueError("password=hunter2 in some driver text") from exc


class Fine:
    name = "cache"

    async def check(self) -> None:
        return None


async def test_a_failing_probe_logs_one_line_without_traceback_or_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check = CheckReadiness([Refusing(), Fine()], timeout_seconds=1)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            report = await check()
            assert report.checks == {"database": "unavailable", "cache": "ok"}
    records = caplog.records
    assert len(records) == 3  # one per failing probe per check
    for record in records:
        assert record.exc_info is None
        assert record.exc_text is None
        message = record.getMessage()
        assert "\n" not in message
        assert "database" in message
        assert "ValueError" in message
        assert "ConnectionRefusedError" in message
        for secret in ("hunter2", "10.0.0.5"):
            assert secret not in message
