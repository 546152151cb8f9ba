"""Liveness, readiness and the health alias."""

from __future__ import annotations

from typing import Any

import msgspec
from dishka import FromDishka
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec

from orbsurv import __version__
from orbsurv.adapters.http.di import inject
from orbsurv.adapters.http.openapi import documented
from orbsurv.adapters.http.problems import problem
from orbsurv.application.system.readiness import CheckReadiness


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


_HEALTH = Health(status="ok", version=__version__)


@get("/healthz", sync_to_thread=False, tags=["health"], summary="Liveness (no dependencies)")
def healthz() -> Health:
    return _HEALTH


@get(
    "/health", sync_to_thread=False, tags=["health"], summary="Liveness (alias of /api/v1/healthz)"
)
def health_alias() -> Health:
    return _HEALTH


@get(
    "/readyz",
    tags=["health"],
    summary="Readiness: database, cache and storage",
    description=(
        "200 when every dependency answers and the database is migrated to this release; 503 "
        "problem+json naming the failing ones (a database behind the code names "
        "`orbsurv migrate`)."
    ),
    responses={
        503: ResponseSpec(None, description="dependency_unavailable, with `checks` per dependency")
    },
    opt=documented(responses={200: Readiness}),
)
@inject
async def readyz(
    request: Request[Any, Any, Any], check: FromDishka[CheckReadiness]
) -> Response[Any]:
    report = await check()
    if report.ready:
        return Response(Readiness(status="ready", checks=report.checks))
    failing = "; ".join(f"{name} {report.checks[name]}" for name in report.failing)
    return problem(
        request,
        503,
        f"Not ready: {failing}.",
        code="dependency_unavailable",
        headers={"Retry-After": "1"},
        extra={"checks": report.checks},
    )
