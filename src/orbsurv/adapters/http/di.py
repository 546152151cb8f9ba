"""Dependency injection for handlers, without the stock middleware's per-request cycle.

The stock ``dishka.integrations.litestar`` middleware opens a request container for every request
and leaves it on ``request.state``, where it and the request refer to each other until the cycle
collector runs. ``inject`` here opens the REQUEST scope around the handler call instead: handlers
that need nothing from the container pay nothing, and the container is closed and unreferenced as
soon as the handler returns. Guards use the APP container on ``app.state``.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import Parameter
from typing import Any, ParamSpec, TypeVar, get_type_hints

from dishka import AsyncContainer, Scope
from dishka.integrations.base import wrap_injection
from litestar import Request
from litestar.datastructures import State

P = ParamSpec("P")
T = TypeVar("T")

CONTAINER_STATE_KEY = "dishka_container"


def app_container(state: State) -> AsyncContainer:
    container: AsyncContainer = state[CONTAINER_STATE_KEY]
    return container


def _container_getter(_: Any, kwargs: dict[str, Any]) -> AsyncContainer:
    return app_container(kwargs["request"].app.state)


def _wrap(func: Callable[P, T], *, request_scope: bool) -> Callable[P, T]:
    additional = []
    if "request" not in get_type_hints(func):
        additional.append(Parameter("request", Parameter.KEYWORD_ONLY, annotation=Request))
    return wrap_injection(
        func=func,
        is_async=True,
        additional_params=additional,
        container_getter=_container_getter,
        manage_scope=request_scope,
        scope=Scope.REQUEST if request_scope else None,
    )


def inject(func: Callable[P, T]) -> Callable[P, T]:
    """Resolve ``FromDishka`` parameters in a REQUEST scope opened around the call."""
    return _wrap(func, request_scope=True)


def inject_app(func: Callable[P, T]) -> Callable[P, T]:
    """For handlers that need only APP-scoped objects (hot paths): no scope is opened."""
    return _wrap(func, request_scope=False)
