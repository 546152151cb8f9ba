"""The baseline: a bare Litestar app answering the same JSON as /api/v1/healthz."""

from __future__ import annotations

import msgspec
from litestar import Litestar, get

from orbsurv import __version__


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str


_HEALTH = Health(status="ok", version=__version__)


@get("/api/v1/healthz", sync_to_thread=False)
def healthz() -> Health:
    return _HEALTH


app = Litestar(route_handlers=[healthz], logging_config=None)
