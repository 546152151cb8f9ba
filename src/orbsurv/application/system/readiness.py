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
    """The exception's class and that of its root cause (``DBAPIError <- ConnectionRefusedError``),
    never its text: driver messages may quote addresses, statements or credentials."""
    names = [type(exc).__name__]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(names) < 4:
        names.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return names[0] if len(names) == 1 else f"{names[0]} <- {names[-1]}"


class CheckReadiness:
    """Run every probe at once, each bounded by ``timeout_seconds``; a failing probe is reported
    by its state (``timeout``, ``unavailable`` or the probe's own) and logged as one line naming
    the dependency and the exception's class."""

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
        except Exception as exc:  # noqa: BLE001 - whatever a probe raises, it is not ready
            # one line per failing probe, no traceback: a probe fails on every poll while its
            # dependency is down, and a chained traceback each time would flood the log
            logger.warning("readiness: %s is unavailable: %s", probe.name, _reason(exc))
            return "unavailable"
        return "ok"

    async def __call__(self) -> ReadinessReport:
        states = await asyncio.gather(*(self._run(probe) for probe in self._probes))
        return ReadinessReport(
            checks={probe.name: state for probe, state in zip(self._probes, states, strict=True)}
        )
