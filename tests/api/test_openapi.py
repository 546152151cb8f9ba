from __future__ import annotations

import json
import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.auth import permission_checks
from tests.api.identity_helpers import sign_up


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
            security = operation["security"]
            if security and all(security):  # signed-in callers only
                assert "401" in responses, (path, method)
            if operation.get("requestBody") or len(operation["parameters"]) > 1:  # + X-Request-ID
                assert {"400", "422"} & responses.keys(), (path, method)
            for status, response in responses.items():
                if "$ref" in response:  # components.responses
                    response = schema["components"]["responses"][response["$ref"].split("/")[-1]]
                if status == "default" or status[0] in "45":
                    media = list(response["content"])
                    if path.endswith(("/verify-page", "/password-reset/page")) and status == "400":
                        # The page tells a person, in HTML; a body it cannot read is problem+json.
                        assert media[0] == "text/html", (path, method)
                        assert set(media) <= {"text/html", "application/problem+json"}
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


async def test_the_document_is_valid_and_compact(client: AsyncTestClient[Litestar]) -> None:
    from openapi_spec_validator import validate

    document = (await client.get("/api/v1/openapi.json")).json()
    validate(document)
    schemas = document["components"]["schemas"]
    titles = [schema.get("title") for schema in schemas.values()]
    assert titles == list(schemas)  # every component titled by its unique name
    assert "Problem" in schemas
    text = json.dumps(document)
    assert text.count('"request_id"') == 1  # the problem schema is written once, then referenced
    assert len(text) < 300_000


async def test_every_operation_declares_what_it_takes_and_answers(
    client: AsyncTestClient[Litestar],
) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            assert "security" in operation, (path, method)  # [] says: public
            for status, answer in operation["responses"].items():
                if status in {"204", "304"}:
                    assert "content" not in answer, (path, method, status)
    hand_decoded = [
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/verify/resend",
        "/api/v1/auth/password-reset/requests",
        "/api/v1/auth/password/forgot",
        "/api/v1/auth/forgot",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/auth/password/reset",
        "/api/v1/auth/reset",
        "/api/v1/waitlist",
        "/waitlist",
        "/api/v1/contact",
        "/api/v1/investor_interest",
        "/api/v1/pilot_request",
        "/api/v1/client_errors",
        "/client_errors",
    ]
    for path in hand_decoded:
        content = paths[path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "application/x-www-form-urlencoded"}, path
    assert "application/json" in paths["/api/v1/analytics/events"]["post"]["requestBody"]["content"]
    for path, status in [
        ("/api/v1/auth/register", "201"),
        ("/api/v1/auth/login", "200"),
        ("/api/v1/auth/refresh", "200"),
    ]:
        schema = paths[path]["post"]["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/TokenPair"}, path
    assert paths["/api/v1/waitlist"]["post"]["security"] == []
    kind = next(
        p for p in paths["/api/v1/admin/{kind}"]["get"]["parameters"] if p["name"] == "kind"
    )
    assert "waitlist" in kind["schema"]["enum"]
    strict = document["components"]["schemas"]["PasswordChange"]
    assert strict["additionalProperties"] is False
    assert document["components"]["schemas"]["SendEmail"]["properties"]["to"]["maxLength"] == 254


async def test_allow_lists_every_method_of_the_path(client: AsyncTestClient[Litestar]) -> None:
    options = await client.options("/api/v1/users")
    refused = await client.delete("/api/v1/users")
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert refused.status_code == 405
    assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    nested = await client.options("/api/v1/admin/users/some-id")
    assert set(nested.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "PATCH", "PUT"}


async def test_upload_bodies_are_described_so_the_docs_can_send_them(
    client: AsyncTestClient[Litestar],
) -> None:
    # Without a requestBody the interactive docs offer no file picker and no byte body.
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    for path, fields in [
        ("/api/v1/projects", ["name", "description", "version", "is_public", "file"]),
        (
            "/api/v1/software-packages",
            ["name", "version", "description", "category", "language", "is_public", "sha256"],
        ),
    ]:
        body = paths[path]["post"]["requestBody"]
        assert body["required"] is True, path
        schema = body["content"]["multipart/form-data"]["schema"]
        properties = list(schema["properties"])
        assert properties[-1] == "file", path  # the documented order: fields, then the file
        assert set(fields) <= set(properties), path
        assert schema["properties"]["file"] == {"type": "string", "format": "binary"}
        assert {"name", "file"} <= set(schema["required"]), path
    chunk = paths["/api/v1/software-packages/uploads/{upload_id}"]["patch"]["requestBody"]
    assert set(chunk["content"]) == {"application/offset+octet-stream", "application/octet-stream"}


async def test_json_answers_have_their_schemas_and_the_tus_patch_its_headers(
    client: AsyncTestClient[Litestar],
) -> None:
    # A handler returning Response[Any] is documented as `{}` unless it declares its body.
    document = (await client.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    for path, method, status, component in [
        ("/api/v1/users", "post", "201", "UserCreated"),
        ("/api/v1/auth/register-from-order", "post", "201", "TokenPair"),
        ("/api/v1/readyz", "get", "200", "Readiness"),
        ("/api/v1/software-packages/uploads/{upload_id}", "patch", "200", "AppendOut"),
    ]:
        answer = paths[path][method]["responses"][status]
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{component}"}, (path, status)
    components = document["components"]["schemas"]
    assert {"upload_id", "offset", "status"} <= set(components["AppendOut"]["required"])
    assert set(components["UserCreated"]["properties"]) == {"user"}
    for path, item in paths.items():  # no JSON success answer is left undescribed
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                media = answer.get("content", {}).get("application/json")
                if status.startswith("2") and media is not None:
                    assert media["schema"] != {}, (path, method, status)

    patch = paths["/api/v1/software-packages/uploads/{upload_id}"]["patch"]
    assert {"409", "410", "413", "460"} <= patch["responses"].keys()
    mismatch = patch["responses"]["460"]
    assert "checksum_mismatch" in mismatch["description"]
    assert list(mismatch["content"]) == ["application/problem+json"]
    headers = {p["name"]: p for p in patch["parameters"] if p["in"] == "header"}
    assert headers["Upload-Offset"]["required"] is True
    assert headers["Upload-Offset"]["schema"]["type"] == "integer"
    assert headers["Upload-Checksum"]["required"] is False

    page = paths["/api/v1/auth/password-reset/page"]["post"]
    # Its 400 is an HTML page, or problem+json for a body it cannot read: both are declared.
    assert set(page["responses"]["400"]["content"]) == {"text/html", "application/problem+json"}
    form = page["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form == {"$ref": "#/components/schemas/ResetPageForm"}
    assert set(components["ResetPageForm"]["properties"]) == {"password", "again"}
    assert any(p["name"] == "token" and p["in"] == "query" for p in page["parameters"])

    action = components["EventIn"]["properties"]["action"]
    assert "cookie_consent" in action["description"]
    assert {"accepted", "declined"} <= set(action["description"].replace("`", " ").split())


async def test_every_keyset_list_refuses_offset_pages(client: AsyncTestClient[Litestar]) -> None:
    """A route that takes ``cursor`` pages by keyset: its ``page`` is the keyset one (above 1
    is a 422 pointing to ``cursor``), never the offset one it would silently ignore."""
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    keyset = {}
    for path, operations in paths.items():
        for method, operation in operations.items():
            parameters = {p["name"]: p for p in operation.get("parameters", [])}
            if "cursor" in parameters:
                keyset[f"{method.upper()} {path}"] = parameters["page"]["description"]
    assert "GET /api/v1/support-chat/messages" in keyset
    assert "GET /api/v1/admin/audit-events" in keyset
    offset = {route for route, description in keyset.items() if "keyset" not in description}
    assert offset == set()


async def test_every_operation_behind_a_permission_documents_its_403(
    client: AsyncTestClient[Litestar], app: Litestar
) -> None:
    user = await sign_up(client, "plain@example.com")
    refused = await client.get("/api/v1/admin/ping", headers=user)
    assert refused.status_code == 403, refused.text
    document = (await client.get("/api/v1/openapi.json")).json()
    undocumented, guarded = [], 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not handler.include_in_schema or not permission_checks(handler):
                continue
            path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)
            for method in handler.http_methods - {"HEAD", "OPTIONS"}:
                guarded += 1
                if "403" not in document["paths"][path][method.lower()]["responses"]:
                    undocumented.append(f"{method} {path}")
    assert guarded > 20
    assert undocumented == []


async def test_the_sign_in_routes_document_the_401_they_answer(
    client: AsyncTestClient[Litestar],
) -> None:
    await sign_up(client, "ada@example.com")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "not the password"}
    )
    assert wrong.status_code == 401, wrong.text
    client.cookies.clear()
    assert (await client.post("/api/v1/auth/refresh", json={})).status_code == 401
    assert (await client.post("/api/v1/auth/logout", json={})).status_code == 401
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    for path in ("/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout"):
        assert "401" in paths[path]["post"]["responses"], path
