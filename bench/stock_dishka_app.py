"""The full Orbsurv stack plus the stock dishka Litestar middleware, for comparison only.

The stock middleware opens a request container for every request and leaves it on
``request.state``: a reference cycle per request that the cycle collector must clean up.
"""

from __future__ import annotations

from dishka.integrations.litestar import setup_dishka  # noqa: TID251 - the thing measured
from litestar import Litestar

from orbsurv.main.app import make_app
from orbsurv.main.settings import load_settings


def create_app() -> Litestar:
    app = make_app(load_settings())
    setup_dishka(app.state.dishka_container, app)
    return app
