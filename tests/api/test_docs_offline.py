"""The interactive docs come from the service itself: no CDN, a CSP that allows exactly that."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_the_docs_page_loads_only_its_own_assets(client: AsyncTestClient[Litestar]) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in page.text  # no inline script for the CSP to allow
    assert "<style" not in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    for source in sources:
        assert source.startswith("/api/v1/docs/assets/"), source  # nothing from elsewhere
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["x-content-type-options"] == "nosniff"
    bundle = await client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    starter = (await client.get("/api/v1/docs/assets/docs.js")).text
    assert "SwaggerUIBundle(" in starter


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/docs/swagger",
        "/api/v1/docs/redoc",
        "/api/v1/docs/assets/missing.js",
        "/api/v1/docs/assets/..%2F..%2Fpyproject.toml",
        "/api/v1/docs/a/b/c",
    ],
)
async def test_unknown_docs_paths_are_problem_json(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"
