"""CheckReadiness: can this process serve traffic that needs its dependencies?"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

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


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CheckReadiness:
    def __init__(self, probes: Sequence[DependencyProbe], timeout_seconds: float = 2.0) -> None:
        self._probes = probes
        self._timeout = timeout_seconds

    def including(self, *probes: DependencyProbe) -> CheckReadiness:
        """The same check over more probes (``orbsurv check`` adds the mail server)."""
        return CheckReadiness([*self._probes, *probes], self._timeout)

    async def _run(self, probe: DependencyProbe) -> str:
        try:
            await asyncio.wait_for(probe.check(), self._timeout)
        except DependencyNotReady as exc:
            logger.warning("readiness: %s: %s", probe.name, exc.state)
            return exc.state
        except TimeoutError:
            logger.warning("readiness: %s did not answer within %.1fs", probe.name, self._timeout)
            return "timeout"
        except Exception as exc:
            logger.warning(
                "readiness: %s is unavailable: %s", probe.name, _reason(exc), exc_info=True
            )
            return "unavailable"
        return "ok"

    async def __call__(self) -> ReadinessReport:
        states = await asyncio.gather(*(self._run(probe) for probe in self._probes))
        return ReadinessReport(
            checks={probe.name: state for probe, state in zip(self._probes, states, strict=True)}
        )
