"""The readiness probe answers within its documented bound whatever hangs
(``docs/operations.md``, "Time bounds": ``/readyz`` waits at most 2 s per probe, all dependencies
at once). An orchestrator's probe has a timeout of its own (Kubernetes: 1 s by default, often set
to a few seconds); a probe that takes longer than documented is counted as failed for the wrong
reason and makes the bound useless for sizing it.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import API, Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

PROBE_BOUND = 2.0  # seconds, docs/operations.md "Time bounds", readiness probe
MARGIN = 0.75  # the answer's own way through the server on a busy machine


@pytest.mark.parametrize("dependency", ["postgres", "redis", "s3"])
def test_readiness_answers_within_its_bound_when_a_dependency_hangs(
    pg: Stack, dependency: str
) -> None:
    pg.proxies[dependency].set_mode("blackhole")
    try:
        started = time.monotonic()
        answer = httpx.get(f"{pg.url}{API}/readyz", timeout=30)
        took = time.monotonic() - started
    finally:
        pg.heal_all()
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "dependency_unavailable"
    assert took <= PROBE_BOUND + MARGIN, f"/readyz answered after {took:.2f} s"
