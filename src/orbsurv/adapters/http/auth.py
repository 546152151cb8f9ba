"""Credentials on the wire: Bearer header or HttpOnly cookies, CSRF for cookie-authenticated
unsafe requests, and the dependencies that turn them into a Principal.

CSRF is a signed double-submit cookie bound to the session (OWASP CSRF Prevention Cheat Sheet,
"signed double-submit cookie"): its value is ``<session id>.<HMAC-SHA256(key, session id)>``. A
cookie-authenticated unsafe request must echo it in ``X-CSRF-Token``, the MAC must verify, and the
session it names must be the session of the credentials the request carries (the access token's
``sid``, or the session id the refresh cookie is stored with). A cookie tossed in from a sibling
origin, even one minted for the attacker's own session, therefore fails."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.context import header
from orbsurv.adapters.http.di import app_container
from orbsurv.application.console.denials import RecordDenial
from orbsurv.application.identity.authenticate import Authenticate
from orbsurv.application.identity.sessions import IssuedTokens
from orbsurv.domain.errors import Forbidden, Unauthenticated
from orbsurv.domain.identity import Permission, Principal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
REFRESH_PATH = "/api/v1/auth"
SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}, {"OAuth2Password": []}]


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Cookie names and flags: ``Secure`` and prefixed names in production."""

    secure: bool
    access_max_age: int
    refresh_max_age: int
    csrf_key: bytes = b""

    @property
    def access(self) -> str:
        return "__Host-orbsurv_access" if self.secure else "orbsurv_access"

    @property
    def refresh(self) -> str:
        # __Host- needs Path=/; the refresh cookie is scoped to the auth routes instead.
        return "__Secure-orbsurv_refresh" if self.secure else "orbsurv_refresh"

    @property
    def csrf(self) -> str:
        return "__Host-orbsurv_csrf" if self.secure else "orbsurv_csrf"

    def csrf_token(self, session_id: str) -> str:
        """``<session id>.<MAC>``: what the CSRF cookie holds for this session."""
        mac = hmac.new(self.csrf_key, f"csrf:{session_id}".encode(), hashlib.sha256).digest()
        return f"{session_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def csrf_session(self, value: str) -> str | None:
        """The session a CSRF token was minted for, or ``None`` when its MAC does not verify."""
        session_id, _, _ = value.partition(".")
        if session_id and hmac.compare_digest(self.csrf_token(session_id), value):
            return session_id
        return None

    def issue(self, tokens: IssuedTokens) -> list[Cookie]:
        return [
            Cookie(
                key=self.access,
                value=tokens.access_token,
                path="/",
                httponly=True,
                secure=self.secure,
                samesite="lax",
                max_age=self.access_max_age,
            ),
            Cookie(
                key=self.refresh,
                # The session id rides along so the CSRF check needs no database read.
                value=f"{tokens.session.id}.{tokens.refresh_token}",
                path=REFRESH_PATH,
                httponly=True,
                secure=self.secure,
                samesite="strict",
                max_age=self.refresh_max_age,
            ),
            Cookie(
                key=self.csrf,
                value=self.csrf_token(tokens.session.id),
                path="/",
                httponly=False,
                secure=self.secure,
                samesite="lax",
                max_age=self.refresh_max_age,
            ),
        ]

    def clear(self) -> list[Cookie]:
        return [
            Cookie(key=name, value="", path=path, max_age=0, expires=0, secure=self.secure)
            for name, path in ((self.access, "/"), (self.refresh, REFRESH_PATH), (self.csrf, "/"))
        ]


def cookies_of(request: Request[Any, Any, Any]) -> CookiePolicy:
    policy: CookiePolicy = request.app.state.cookie_policy
    return policy


def with_session_cookies(
    response: Response[Any], request: Request[Any, Any, Any], tokens: IssuedTokens
) -> Response[Any]:
    response.cookies.extend(cookies_of(request).issue(tokens))
    return response


def refresh_cookie(request: Request[Any, Any, Any]) -> tuple[str, str] | None:
    """``(session id, refresh token)`` from the refresh cookie, or ``None`` without one."""
    value = request.cookies.get(cookies_of(request).refresh)
    if not value:
        return None
    session_id, _, token = value.rpartition(".")
    return session_id, token


def check_csrf(request: Request[Any, Any, Any], session_id: str | None = None) -> None:
    """A cookie-authenticated unsafe request must echo the CSRF cookie in ``X-CSRF-Token``;
    the cookie's MAC must verify and, when ``session_id`` is known, name that session."""
    if request.method in SAFE_METHODS:
        return
    policy = cookies_of(request)
    expected = request.cookies.get(policy.csrf, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if (
        not expected
        or not hmac.compare_digest(expected.encode(), sent.encode())
        or (minted_for := policy.csrf_session(expected)) is None
        or (session_id is not None and not hmac.compare_digest(minted_for, session_id))
    ):
        raise Forbidden("Send the X-CSRF-Token header with cookie sign-in.", code="csrf_failed")


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    authorization = header(request.scope["headers"], b"authorization")
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.", code="invalid_token")
    return token.strip()


def access_token(request: Request[Any, Any, Any]) -> str | None:
    """The Bearer token, else the access cookie (then CSRF applies)."""
    token = bearer_token(request)
    if token is not None:
        return token
    token = request.cookies.get(cookies_of(request).access)
    if token:
        check_csrf(request)
        return token
    return None


_PRINCIPAL = "orbsurv.principal"  # where sign_in_first leaves it, in the scope's state


_PERMISSION_CHECKS: set[Callable[..., Awaitable[Principal]]] = set()  # made by ``requires``


@functools.cache
def resolved_dependencies(handler: BaseRouteHandler) -> dict[str, Provide]:
    """The dependencies the handler resolves, by name: those its signature names, and theirs."""
    providers = handler.resolve_dependencies()
    wanted = list(handler.parsed_fn_signature.parameters)
    used: dict[str, Provide] = {}
    while wanted:
        name = wanted.pop()
        if name in providers and name not in used:
            used[name] = providers[name]
            wanted.extend(providers[name].parsed_fn_signature.parameters)
    return used


@functools.cache
def sign_in_needs(
    handler: BaseRouteHandler,
) -> tuple[bool, tuple[Callable[..., Awaitable[Principal]], ...]]:
    """Whether the handler needs a signed-in caller, and the ``requires(permission)``
    dependencies it resolves (itself or through another dependency)."""
    security = handler.resolve_security() if isinstance(handler, HTTPRouteHandler) else []
    used = resolved_dependencies(handler)
    checks = [p.dependency for p in used.values() if p.dependency in _PERMISSION_CHECKS]
    signed_in = (bool(security) and all(security)) or "principal" in used
    return signed_in or bool(checks), tuple(checks)


def needs_principal(handler: BaseRouteHandler) -> bool:
    """Whether the handler serves signed-in callers only: its OpenAPI security requirement
    names credentials with no anonymous ``{}`` alternative (``SECURITY``), or it takes the
    ``principal`` dependency, itself or through another (``requires(permission)``)."""
    return sign_in_needs(handler)[0]


def permission_checks(handler: BaseRouteHandler) -> tuple[Callable[..., Awaitable[Principal]], ...]:
    """The ``requires(permission)`` dependencies the handler resolves."""
    return sign_in_needs(handler)[1]


async def sign_in_first(request: Request[Any, Any, Any]) -> None:
    """Run first in the ``before_request`` hook, before anything the caller sent is judged: a
    route that needs a signed-in caller answers 401 (or 403 ``csrf_failed``) to one that is
    not, whatever it sent; a 422 first would show an anonymous caller how the route validates
    its input. The principal is kept for ``check_permissions`` and the handler
    (``current_principal``, the ``principal`` dependency): resolved once.

    Not a Litestar guard: guards receive a copy of the route handler per request, which costs
    every request a copy and defeats any cache keyed by the handler."""
    if sign_in_needs(request.route_handler)[0]:
        principal = await current_principal(request)
        request.scope.setdefault("state", {})[_PRINCIPAL] = principal


async def check_permissions(request: Request[Any, Any, Any]) -> None:
    """In the ``before_request`` hook, after ``sign_in_first`` and the screening of the path,
    query and headers (the denial is audited with the path and user agent, which must be
    storable), before the body is read or screened: 403 to a caller whose role lacks the
    permission the route ``requires``, whatever the body (not JSON, nested too deeply, bad
    strings), so a refused caller learns nothing of how the route validates and its denial is
    recorded."""
    checks = sign_in_needs(request.route_handler)[1]
    if checks:
        principal = await current_principal(request)
        for check in checks:
            await check(request, principal)


async def current_principal(request: Request[Any, Any, Any]) -> Principal:
    known: Principal | None = request.scope.get("state", {}).get(_PRINCIPAL)
    if known is not None:
        return known
    authenticate: Authenticate = request.app.state.authenticate
    token = bearer_token(request)
    if token is not None:
        return await authenticate(token)
    token = request.cookies.get(cookies_of(request).access)
    if not token:
        raise Unauthenticated("Sign in first.", code="unauthenticated")
    principal = await authenticate(token)
    check_csrf(request, principal.session_id)
    return principal


def requires(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Principal:
        if not principal.can(permission):
            await record_denial(request, principal)
            if principal.role.needs_dev_scope(permission, principal.scope):
                raise Forbidden(
                    "This needs a dev session opened with a one-time code (scope=dev).",
                    code="dev_session_required",
                )
            raise Forbidden("Your role does not allow this.", code="forbidden")
        return principal

    _PERMISSION_CHECKS.add(dependency)
    return dependency


async def record_denial(request: Request[Any, Any, Any], principal: Principal) -> None:
    """Audit the refusal (and count it toward a burst alert) in a transaction of its own."""
    async with app_container(request.app.state)() as scope:
        await (await scope.get(RecordDenial))(principal, request.url.path, request_context(request))
