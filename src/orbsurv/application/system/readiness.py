"""CheckReadiness: can this process serve traffic that needs its dependencies?"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from orbsurv.application.faults import describe
from orbsurv.application.ports import DependencyNotReady, DependencyProbe

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != "ok"]


class CheckReadiness:
    """Run every probe at once, each bounded by ``timeout_seconds``; a failing probe is reported
    by its state (``timeout``, ``unavailable`` or the probe's own) and logged as one line naming
    the dependency and the exception's class."""

    def __init__(self, probes: Sequence[DependencyProbe], timeout_seconds: float = 2.0) -> None:
        self._probes = probes
        self._timeout = timeout_seconds
        self._abandoned: set[asyncio.Task[None]] = set()

    def _abandon(self, task: asyncio.Task[None]) -> None:
        """Cancel a probe that overran and let it wind down in the background: closing a
        connection to a silent server can itself take the driver's own timeout, which must not
        be added to the probe's bound (``asyncio.wait_for`` waits for the cancellation)."""
        task.cancel()
        self._abandoned.add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self._abandoned.discard(done)
            if not done.cancelled():
                done.exception()  # retrieved: a late failure is the timeout already reported

        task.add_done_callback(forget)

    def including(self, *probes: DependencyProbe) -> CheckReadiness:
        """The same check over more probes (``orbsurv check`` adds the mail server)."""
        return CheckReadiness([*self._probes, *probes], self._timeout)

    async def _run(self, probe: DependencyProbe) -> str:
        task = asyncio.ensure_future(probe.check())
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
            if not done:
                self._abandon(task)
                raise TimeoutError
            task.result()
        except DependencyNotReady as exc:
            logger.warning("readiness: %s: %s", probe.name, exc.state)
            return exc.state
        except TimeoutError:
            logger.warning("readiness: %s did not answer within %.1fs", probe.name, self._timeout)
            return "timeout"
        except Exception as exc:  # noqa: BLE001 - whatever a probe raises, it is not ready
            # one line per failing probe, no traceback: a probe fails on every poll while its
            # dependency is down, and a chained traceback each time would flood the log
            logger.warning("readiness: %s is unavailable: %s", probe.name, describe(exc))
            return "unavailable"
        return "ok"

    async def __call__(self) -> ReadinessReport:
        states = await asyncio.gather(*(self._run(probe) for probe in self._probes))
        return ReadinessReport(
            checks={probe.name: state for probe, state in zip(self._probes, states, strict=True)}
        )
