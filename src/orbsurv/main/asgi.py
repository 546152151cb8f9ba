"""ASGI entry point for servers.

``granian --interface asgi --factory orbsurv.main.asgi:create_app``
"""

from __future__ import annotations

import gc

from litestar import Litestar

from orbsurv.main.app import make_app
from orbsurv.main.logs import configure_logging
from orbsurv.main.settings import load_settings


def create_app() -> Litestar:
    settings = load_settings()
    configure_logging(settings)
    app = make_app(settings)
    app.on_startup.append(freeze_startup_heap)  # after the app's own start-up hook
    return app


def freeze_startup_heap() -> None:
    """Exempt everything built at start-up from the cycle collector.

    The started process tracks ~150,000 long-lived objects (routes, OpenAPI schema, SQLAlchemy
    and dishka metadata); each full collection walked them all and paused the event loop for
    50-350 ms every time enough survivors had accumulated. ``gc.freeze`` moves them to the
    permanent generation, so a full collection only walks what was allocated since
    (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    gc.collect()
    gc.freeze()
