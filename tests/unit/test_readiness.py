from __future__ import annotations

import asyncio

from orbsurv.application.system.readiness import CheckReadiness


class Probe:
    def __init__(self, name: str, outcome: str) -> None:
        self.name = name
        self.outcome = outcome

    async def check(self) -> None:
        if self.outcome == "fail":
            raise ConnectionError("down")
        if self.outcome == "hang":
            await asyncio.Event().wait()


async def test_ready_when_every_probe_answers() -> None:
    report = await CheckReadiness([Probe("database", "ok"), Probe("cache", "ok")])()
    assert report.ready
    assert report.checks == {"database": "ok", "cache": "ok"}


async def test_names_the_failing_and_the_silent_dependencies() -> None:
    check = CheckReadiness(
        [Probe("database", "ok"), Probe("cache", "fail"), Probe("storage", "hang")],
        timeout_seconds=0.05,
    )
    report = await check()
    assert not report.ready
    assert report.checks == {"database": "ok", "cache": "unavailable", "storage": "timeout"}
    assert report.failing == ["cache", "storage"]


async def test_including_adds_probes() -> None:
    report = await CheckReadiness([Probe("a", "ok")]).including(Probe("mail", "fail"))()
    assert report.failing == ["mail"]
