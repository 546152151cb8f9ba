"""The interactive API docs, served entirely by this service (no CDN), so they work offline.

Swagger UI's files come from the ``swagger-ui-py`` package (which vendors the upstream
``swagger-ui-dist`` build); the page and its starter script are ours. The page carries no inline
script or style, so its Content-Security-Policy allows exactly the service's own origin for scripts,
styles, the document fetch and images (plus ``data:`` images, which Swagger UI's stylesheet uses
for icons), and refuses framing (OWASP clickjacking defence). Every unknown path under the docs
prefix answers 404 problem+json, like the rest of the API.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import Parameter

from orbsurv.adapters.http.problems import problem

SWAGGER_STATIC = Path(str(resources.files("swagger_ui"))) / "static"
OWN_STATIC = Path(__file__).parent / "static"
#: Asset name -> (file, media type). Only these are served: nothing else under the directories.
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (SWAGGER_STATIC / "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": (
        SWAGGER_STATIC / "swagger-ui-bundle.js",
        "text/javascript",
    ),
    "favicon-32x32.png": (SWAGGER_STATIC / "favicon-32x32.png", "image/png"),
    "docs.js": (OWN_STATIC / "docs.js", "text/javascript"),
}
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
DOCS_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class OfflineSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI at the docs root, with its assets under ``<docs>/assets/``."""

    def __init__(self, docs_path: str, spec_url: str) -> None:
        super().__init__(path="/", media_type=MediaType.HTML, favicon="", style="")
        self._docs_path = docs_path.rstrip("/")
        self._spec_url = spec_url

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        assets = f"{self._docs_path}/assets"
        title = html.escape(str(openapi_schema["info"]["title"]))
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{title}</title>"
            f'<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">'
            f'<link rel="stylesheet" href="{assets}/swagger-ui.css"></head><body>'
            f'<div id="swagger-ui" data-spec="{html.escape(self._spec_url)}"></div>'
            f'<script src="{assets}/swagger-ui-bundle.js"></script>'
            f'<script src="{assets}/docs.js"></script>'
            "</body></html>"
        ).encode()

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def docs_asset(
    request: Request[Any, Any, Any], name: Annotated[str, Parameter(max_length=128)]
) -> Response[Any]:
    found = ASSETS.get(name)
    if found is None:
        return problem(request, 404, "No such file in the API docs.", code="not_found")
    path, media_type = found
    return Response(
        _read(path),
        media_type=media_type,
        headers={**DOCS_HEADERS, "Cache-Control": "public, max-age=86400"},
    )


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def docs_router(docs_path: str) -> Router:
    """The router Litestar fills with the docs routes; its hooks make the answers ours.

    Litestar adds a catch-all that answers an HTML 404 for unknown docs paths, and its own copy of
    the document at ``openapi.json`` (without the completion pass of ``openapi.py``): both answer
    404 problem+json, so ``/api/v1/openapi.json`` is the one document. Every docs answer gets the
    docs CSP.
    """

    async def finish(response: Response[Any]) -> Response[Any]:
        for name, value in DOCS_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def refuse_unknown(request: Request[Any, Any, Any]) -> Response[Any] | None:
        path = request.url.path.rstrip("/")
        if path == docs_path or path.startswith(f"{docs_path}/assets/"):
            return None
        return problem(request, 404, "No such page in the API docs.", code="not_found")

    return Router(
        docs_path,
        route_handlers=[],
        include_in_schema=False,
        before_request=refuse_unknown,
        after_request=finish,
    )
