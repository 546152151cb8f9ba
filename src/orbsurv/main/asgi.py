"""ASGI entry point for servers.

``granian --interface asgi --factory orbsurv.main.asgi:create_app``
"""

from __future__ import annotations

from litestar import Litestar

from orbsurv.main.app import make_app
from orbsurv.main.logs import configure_logging
from orbsurv.main.settings import load_settings


def create_app() -> Litestar:
    settings = load_settings()
    configure_logging(settings)
    return make_app(settings)
