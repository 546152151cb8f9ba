"""``make_app``: settings in, a Litestar application with its container out."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import msgspec
from dishka import AsyncContainer, Provider, make_async_container
from litestar import Litestar, Request, Response, Router, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme

from orbsurv import __version__
from orbsurv.adapters.http.account import AUTH_ROUTES, PORTAL_ROUTES
from orbsurv.adapters.http.auth import (
    CookiePolicy,
    check_permissions,
    current_principal,
    sign_in_first,
)
from orbsurv.adapters.http.client import ClientAddress
from orbsurv.adapters.http.console import ROUTES as CONSOLE_ROUTES
from orbsurv.adapters.http.console import document_exports
from orbsurv.adapters.http.content import ROUTES as CONTENT_ROUTES
from orbsurv.adapters.http.context import RequestContextMiddleware
from orbsurv.adapters.http.di import CONTAINER_STATE_KEY
from orbsurv.adapters.http.docs import OfflineSwaggerPlugin, docs_router
from orbsurv.adapters.http.health import health_alias, healthz, readyz
from orbsurv.adapters.http.identity import ROUTES as IDENTITY_ROUTES
from orbsurv.adapters.http.identity import auth_me, users_me
from orbsurv.adapters.http.leads import FORM_ROUTES
from orbsurv.adapters.http.leads import ROUTES as INTAKE_ROUTES
from orbsurv.adapters.http.media import (
    SINGLE_VALUED,
    enforce_body_media_type,
    screen_body,
    screen_request,
    single_valued_query,
)
from orbsurv.adapters.http.methods import HeadAsGet, allow_header_fixer
from orbsurv.adapters.http.metrics import HttpMetrics
from orbsurv.adapters.http.openapi import complete as complete_openapi
from orbsurv.adapters.http.orders import ROUTES as ORDER_ROUTES
from orbsurv.adapters.http.orders import document_orders
from orbsurv.adapters.http.packages import CATALOGUE_ROUTES, UPLOAD_ROUTES
from orbsurv.adapters.http.pagination import provide_page_request
from orbsurv.adapters.http.problems import document_problems, exception_handlers
from orbsurv.adapters.http.projects import PROJECT_ROUTES
from orbsurv.adapters.http.streams import BodyDeadlines
from orbsurv.adapters.http.support import ROUTES as SUPPORT_ROUTES
from orbsurv.adapters.http.throttling import throttle_first
from orbsurv.application.identity.authenticate import Authenticate
from orbsurv.application.identity.ports import ProfileCache, TokenDenylist
from orbsurv.application.identity.profile import GetProfile
from orbsurv.application.identity.seed import SeedSuperuser, SuperuserSeed
from orbsurv.application.packages.uploads import UploadPolicy
from orbsurv.domain.errors import NotFound, Unauthenticated
from orbsurv.domain.identity import Role
from orbsurv.main.ioc import providers_for
from orbsurv.main.logs import install_redaction
from orbsurv.main.metrics import bearer_matches, metrics_served_by_app
from orbsurv.main.settings import Settings
from orbsurv.main.worker import run_jobs

API_PREFIX = "/api/v1"
DOCS_PATH = f"{API_PREFIX}/docs"
logger = logging.getLogger(__name__)
CORS_METHODS: list[Any] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-CSRF-Token",
    "X-Request-ID",
    "Upload-Offset",
    "X-Upload-Offset",
    "Upload-Length",
    "Upload-Checksum",
    "Upload-Metadata",
    "Tus-Resumable",
    "If-None-Match",
    "If-Range",
    "Range",
]
CORS_EXPOSED = [
    "X-Request-ID",
    "Retry-After",
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "ETag",
]


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text. ``METRICS_TOKEN`` set: only for ``Authorization: Bearer <token>``
    (compared in constant time; 401 ``invalid_token`` with ``WWW-Authenticate`` otherwise).
    ``METRICS_PORT`` set: 404 here, the ``orbsurv serve`` listener serves them. Production with
    neither: 404, nothing is exposed. Development and test with neither: open."""
    settings: Settings = request.app.state.settings
    if not metrics_served_by_app(settings):
        raise NotFound("Not found.")
    if settings.metrics_token is not None and not bearer_matches(
        request.headers.get("authorization"), settings.metrics_token
    ):
        raise Unauthenticated(
            "The metrics need the METRICS_TOKEN bearer token.", code="invalid_token"
        )
    metrics: HttpMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@get(
    f"{API_PREFIX}/openapi.json",
    include_in_schema=False,
    sync_to_thread=False,
    media_type="application/vnd.oai.openapi+json",
)
def openapi_document(request: Request[Any, Any, Any]) -> bytes:
    document: bytes = request.app.state.openapi_document
    return document


async def admit(request: Request[Any, Any, Any]) -> None:
    """The ``before_request`` hook of every route, in this order: who is asking (401), whether
    the strings of the path, query and headers are storable (400, 422), whether their role may
    use the route (403, audited), whether the body is well-formed JSON or form text with
    storable strings (400 ``malformed_body``, 422), then whether it is of the declared media
    type and model (415, 422). An anonymous write spends its client's budget (429) before its
    body is read; a caller refused by the gate is told 403 whatever the body."""
    await sign_in_first(request)
    await throttle_first(request)
    await screen_request(request)
    await check_permissions(request)
    await screen_body(request)
    await enforce_body_media_type(request)


def build_container(settings: Settings, *extra_providers: Provider) -> AsyncContainer:
    return make_async_container(
        *providers_for(settings), *extra_providers, context={Settings: settings}
    )


def make_app(settings: Settings, *extra_providers: Provider) -> Litestar:
    """Build the HTTP application. ``extra_providers`` override adapters (tests, tools)."""
    install_redaction()  # no log record may quote the values a failed statement carried
    container = build_container(settings, *extra_providers)
    metrics = HttpMetrics()

    stop_jobs = asyncio.Event()
    background: list[asyncio.Task[None]] = []

    async def start(app: Litestar) -> None:
        # Warm the hot path: the authenticator, the profile reader (both read from app.state by
        # the handlers) and the denylist mirror (it starts syncing now).
        app.state.authenticate = await container.get(Authenticate)
        app.state.profile = await container.get(GetProfile)
        app.state.upload_policy = await container.get(UploadPolicy)
        await container.get(TokenDenylist)
        await container.get(ProfileCache)
        if settings.superuser_email and settings.superuser_password:
            await seed_superuser(container, settings)
        if settings.runs_jobs_in_process:  # production runs `orbsurv worker` instead
            background.append(asyncio.create_task(run_jobs(container, stop_jobs)))

    async def close_container() -> None:
        stop_jobs.set()
        await asyncio.gather(*background, return_exceptions=True)
        await container.close()

    api = Router(
        API_PREFIX,
        route_handlers=[
            healthz,
            readyz,
            *IDENTITY_ROUTES,
            *AUTH_ROUTES,
            *PORTAL_ROUTES,
            *INTAKE_ROUTES,
            *ORDER_ROUTES,
            *CONSOLE_ROUTES,
            *CONTENT_ROUTES,
            *SUPPORT_ROUTES,
            *UPLOAD_ROUTES,
            *CATALOGUE_ROUTES,
            *PROJECT_ROUTES,
        ],
    )
    # Some pages of the existing site post the public forms without the prefix.
    root_forms = Router("/", route_handlers=FORM_ROUTES)
    # The existing Orbsurv web client calls the portal (and its profile) under /api/v1/app.
    portal_alias = Router(f"{API_PREFIX}/app", route_handlers=[*PORTAL_ROUTES, users_me, auth_me])
    app = Litestar(
        route_handlers=[
            api,
            portal_alias,
            root_forms,
            health_alias,
            metrics_endpoint,
            openapi_document,
        ],
        exception_handlers=exception_handlers,
        before_request=admit,
        cors_config=(
            CORSConfig(
                allow_origins=list(settings.cors_allow_origins),
                allow_credentials=True,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSED,
                max_age=600,
            )
            if settings.cors_allow_origins
            else None
        ),
        openapi_config=OpenAPIConfig(
            title="Orbsurv API",
            version=__version__,
            description=(
                "One API for the Orbsurv marketing site, user portal and operator console. "
                "Every error is application/problem+json with a stable `code`."
            ),
            # Swagger UI from the service itself (works offline); see adapters/http/docs.py.
            path=DOCS_PATH,
            render_plugins=[OfflineSwaggerPlugin(DOCS_PATH, f"{API_PREFIX}/openapi.json")],
            openapi_router=docs_router(DOCS_PATH),
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", bearer_format="JWT"
                    ),
                    "OAuth2Password": SecurityScheme(
                        type="oauth2",
                        description="Swagger's Authorize button: sign in with the form login.",
                        flows=OAuthFlows(
                            password=OAuthFlow(
                                token_url=f"{API_PREFIX}/auth/login",
                                scopes={"user": "a user session", "dev": "a dev session (otp)"},
                            )
                        ),
                    ),
                }
            ),
        ),
        request_max_body_size=settings.max_json_body_bytes,
        dependencies={
            "principal": Provide(current_principal),
            "paging": Provide(provide_page_request, sync_to_thread=False),
        },
        state=State(
            {
                CONTAINER_STATE_KEY: container,
                "metrics": metrics,
                "settings": settings,
                "cookie_policy": CookiePolicy(
                    secure=settings.is_production,
                    access_max_age=settings.access_token_expire_minutes * 60,
                    refresh_max_age=settings.refresh_token_expire_minutes * 60,
                    csrf_key=hashlib.sha256(
                        b"orbsurv-csrf:" + settings.jwt_secret_key.encode()
                    ).digest(),
                ),
                "client_address": ClientAddress(settings.trusted_proxies),
                "allow_special_use_email": settings.allows_special_use_email,
            }
        ),
        on_startup=[start],
        on_shutdown=[close_container],
        logging_config=None,
        debug=False,
    )
    app.state[SINGLE_VALUED] = single_valued_query(app)
    document_orders(app.openapi_schema)  # before the problems: bodies bring their 422
    document_problems(app.openapi_schema)
    document_exports(app.openapi_schema)
    app.state.openapi_document = msgspec.json.encode(complete_openapi(app))
    app.before_send.append(allow_header_fixer(app))  # type: ignore[arg-type]
    deadlines = BodyDeadlines(
        HeadAsGet(app.asgi_handler, app),
        idle_seconds=settings.upload_idle_timeout_seconds,
        max_seconds=settings.upload_body_max_seconds,
    )
    app.asgi_handler = RequestContextMiddleware(deadlines, metrics)
    return app


async def seed_superuser(container: AsyncContainer, settings: Settings) -> None:
    assert settings.superuser_email
    assert settings.superuser_password
    seed = SuperuserSeed(
        email=settings.superuser_email,
        password=settings.superuser_password,
        role=Role(settings.superuser_role),
    )
    try:
        async with container() as request:
            await (await request.get(SeedSuperuser))(seed)
    except Exception:
        logger.exception("could not seed the superuser (is the database migrated?)")
