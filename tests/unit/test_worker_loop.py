"""The worker's job loop: a dependency outage is logged once and healed by the next run; a bug
is logged with its traceback every time."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from orbsurv.domain.errors import DependencyUnavailable
from orbsurv.main.worker import Job, run_jobs


async def _run(job: Job, until: asyncio.Event) -> None:
    stop = asyncio.Event()

    async def stopper() -> None:
        await asyncio.wait_for(until.wait(), timeout=10)
        stop.set()

    await asyncio.gather(run_jobs(None, stop, [job]), stopper())  # type: ignore[arg-type]


async def test_an_outage_is_one_warning_and_its_end_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    healed = asyncio.Event()

    async def flaky(_container: Any) -> int:
        nonlocal runs
        runs += 1
        if runs <= 5:
            raise DependencyUnavailable("The database is unavailable.")
        healed.set()
        return 0

    with caplog.at_level(logging.INFO, logger="orbsurv.worker"):
        await _run(Job(name="flaky", interval=0.01, run=flaky), healed)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert runs == 6
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "flaky" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_a_bug_is_logged_with_its_traceback_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    enough = asyncio.Event()

    async def broken(_container: Any) -> int:
        nonlocal runs
        runs += 1
        if runs == 3:
            enough.set()
        raise ValueError("a bug of ours")

    with caplog.at_level(logging.INFO, logger="orbsurv.worker"):
        await _run(Job(name="broken", interval=0.01, run=broken), enough)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) >= 3
    assert all(r.exc_info is not None for r in errors)
