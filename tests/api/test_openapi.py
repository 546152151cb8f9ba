from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_schema_and_docs_are_served(client: AsyncTestClient[Litestar]) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    assert schema["info"]["title"] == "Orbsurv API"
    assert {"/api/v1/healthz", "/api/v1/readyz", "/health", "/api/v1/users"} <= schema[
        "paths"
    ].keys()
    assert "/metrics" not in schema["paths"]
    docs = await client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_every_error_response_is_documented_as_problem_json(
    client: AsyncTestClient[Litestar],
) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation["responses"]
            assert "default" in responses, (path, method)
            for status, response in responses.items():
                if status == "default" or status[0] in "45":
                    media = list(response["content"])
                    if path.endswith(("/verify-page", "/password-reset/page")) and status == "400":
                        assert media == ["text/html"]  # the page tells a person, in HTML
                        continue
                    assert media == ["application/problem+json"], (path, status)


async def test_swagger_authorize_uses_the_form_login(client: AsyncTestClient[Litestar]) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2Password"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/login"
    login = schema["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= login.keys()
    me = schema["paths"]["/api/v1/users/me"]["get"]
    assert {"OAuth2Password": []} in me["security"]
