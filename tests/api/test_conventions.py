"""The HTTP conventions every route shares: problem+json, request ids, limits, CORS, metrics."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar, get
from litestar.params import HeaderParameter, Parameter
from litestar.testing import AsyncTestClient

from orbsurv.adapters.http.problems import exception_handlers
from orbsurv.application.system.readiness import CheckReadiness
from orbsurv.main.app import make_app
from orbsurv.main.logs import JsonFormatter, RequestIdFilter
from tests.api.identity_helpers import sign_up
from tests.conftest import SettingsFactory
from tests.services import free_port

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_a_sane_request_id_is_echoed(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/healthz", headers={"X-Request-ID": "req-1.A_b"})
    assert response.headers["x-request-id"] == "req-1.A_b"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "<script>"])
async def test_an_insane_request_id_is_replaced(
    client: AsyncTestClient[Litestar], bad: str
) -> None:
    response = await client.get("/api/v1/healthz", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


async def test_generated_ids_differ(client: AsyncTestClient[Litestar]) -> None:
    first = await client.get("/api/v1/healthz")
    second = await client.get("/api/v1/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_unknown_route(client: AsyncTestClient[Litestar]) -> None:
    assert_problem(
        await client.get("/api/v1/no-such-thing", headers={"X-Request-ID": "r1"}), 404, "not_found"
    )


async def test_wrong_method(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/api/v1/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_head_is_served_wherever_get_is(client: AsyncTestClient[Litestar]) -> None:
    # RFC 9110 9.1: all general-purpose servers MUST support GET and HEAD; 9.3.2: HEAD answers
    # the GET's status and header fields without the content.
    for path in ("/api/v1/healthz", "/api/v1/resources", "/api/v1/openapi.json"):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-length"] == str(len(got.content)), path
        assert head.headers["content-type"] == got.headers["content-type"], path
        allow = (await client.options(path)).headers["allow"].split(", ")
        assert {"GET", "HEAD"} <= set(allow), (path, allow)


async def test_malformed_json(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/users", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed_body")


async def test_wrong_content_type(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/users", content=b"email=a@example.com", headers={"Content-Type": "text/plain"}
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "application/json" in body["detail"]


async def test_missing_body(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/v1/users", headers={"Content-Type": "application/json"})
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == [{"field": "body", "message": "a JSON body is required"}]


async def test_oversized_body(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/api/v1/users",
        content=b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")
    assert (await client.get("/api/v1/healthz")).status_code == 200  # still serving


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com"}, "password"),
        ({"password": "correct horse battery"}, "email"),
        ({"email": 5, "password": "correct horse battery"}, "email"),
        ({"email": "a@example.com", "password": ["x"]}, "password"),
        ([], "body"),
        ("just a string", "body"),
    ],
)
async def test_validation_errors_name_the_field(
    client: AsyncTestClient[Litestar], body: Any, field: str
) -> None:
    problem = assert_problem(await client.post("/api/v1/users", json=body), 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=a&q=b", "q"),  # the handler's own parameter
        ("page=1&page=2", "page"),  # the paging dependency's
        ("limit=1&limit=50", "limit"),
        ("page_size=5&page_size=1", "page_size"),
    ],
)
async def test_a_single_valued_query_parameter_given_twice_is_refused(
    client: AsyncTestClient[Litestar], query: str, field: str
) -> None:
    """No value of a repeated parameter wins silently, whether the handler declares it or a
    dependency it resolves does."""
    auth = await sign_up(client)
    path = "/api/v1/software-packages" if field == "q" else "/api/v1/auth/sessions"
    assert (await client.get(path, headers=auth)).status_code == 200
    problem = assert_problem(
        await client.get(f"{path}?{query}", headers=auth), 422, "validation_error"
    )
    assert [error["field"] for error in problem["errors"]] == [field]


async def test_a_repeated_name_that_is_no_query_parameter_is_ignored(
    client: AsyncTestClient[Litestar],
) -> None:
    """Only query parameters are single-valued: the name of the request, of a dependency
    (``principal``, ``paging``) or of nothing at all is ignored, repeated or not."""
    auth = await sign_up(client)
    for path in (
        "/api/v1/users/me?request=1&request=2&x=1&x=2",
        "/api/v1/auth/sessions?principal=1&principal=2&paging=1&paging=2",
        "/api/v1/readyz?request=1&request=2",
    ):
        answer = await client.get(path, headers=auth)
        assert answer.status_code == 200, (path, answer.text)


async def test_a_missing_query_parameter_is_named(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/auth/verify?other=secret-value")
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"] == [{"field": "token", "message": "is required (a query parameter)"}]
    assert problem["detail"] == "token: is required (a query parameter)."
    assert "secret-value" not in response.text  # the query string is never echoed


async def test_missing_parameters_are_named_on_any_route() -> None:
    @get("/probe", sync_to_thread=False)
    def probe(
        limit: Annotated[int, Parameter(ge=1)],
        tenant: Annotated[str, HeaderParameter(name="X-Tenant")],
    ) -> dict[str, Any]:
        return {"limit": limit, "tenant": tenant}

    app = Litestar([probe], exception_handlers=exception_handlers)
    async with AsyncTestClient(app) as probe_client:
        no_header = await probe_client.get("/probe?limit=2")
        assert no_header.status_code == 422, no_header.text
        assert no_header.headers["content-type"].startswith("application/problem+json")
        assert no_header.json()["errors"] == [
            {"field": "X-Tenant", "message": "is required (a header parameter)"}
        ]
        no_query = await probe_client.get("/probe", headers={"X-Tenant": "t"})
        assert no_query.json()["errors"] == [
            {"field": "limit", "message": "is required (a query parameter)"}
        ]
        too_small = await probe_client.get("/probe?limit=0", headers={"X-Tenant": "t"})
        assert [e["field"] for e in too_small.json()["errors"]] == ["limit"]
        assert (await probe_client.get("/probe?limit=2", headers={"X-Tenant": "t"})).json() == {
            "limit": 2,
            "tenant": "t",
        }


async def test_a_500_never_leaks_exception_text(
    make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding:
        async def __call__(self) -> None:
            raise RuntimeError("secret internals: password=hunter2")

    class Broken(Provider):
        @provide(scope=Scope.APP, override=True)
        def readiness(self) -> CheckReadiness:
            return Exploding()  # type: ignore[return-value]

    async with AsyncTestClient(make_app(make_settings(), Broken())) as client:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/api/v1/readyz", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["detail"] == "An unexpected error occurred."
    assert "hunter2" in caplog.text  # the operator still sees it, in the log


async def test_cors_allows_only_the_configured_origins(make_settings: SettingsFactory) -> None:
    app = make_app(make_settings(CORS_ALLOW_ORIGINS="https://app.example,https://www.example"))
    async with AsyncTestClient(app) as client:
        allowed = await client.options(
            "/api/v1/users",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "content-type,x-csrf-token",
            },
        )
        denied = await client.get("/api/v1/healthz", headers={"Origin": "https://evil.example"})
        simple = await client.get("/api/v1/healthz", headers={"Origin": "https://www.example"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "PATCH" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == "https://www.example"
    assert "X-Request-ID" in simple.headers["access-control-expose-headers"]


async def test_metrics_count_requests_by_route_template_and_status(
    client: AsyncTestClient[Litestar],
) -> None:
    await client.get("/api/v1/healthz")
    await client.get("/api/v1/nowhere/123")
    text = (await client.get("/metrics")).text
    assert (
        'orbsurv_http_requests_total{method="GET",route="/api/v1/healthz",status="200"} 1.0' in text
    )
    assert 'route="<unmatched>",status="404"' in text  # raw paths never become labels
    assert "orbsurv_http_request_duration_seconds_bucket" in text


async def test_logs_carry_the_request_id(make_settings: SettingsFactory) -> None:
    app = make_app(make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("orbsurv")
    logger.addHandler(handler)
    try:
        async with AsyncTestClient(app) as client:
            await client.get("/api/v1/readyz", headers={"X-Request-ID": "trace-me"})
        logging.getLogger("orbsurv.test").warning("outside a request")
    finally:
        logger.removeHandler(handler)
    entries = [json.loads(line) for line in lines]
    inside = [e for e in entries if "cache" in e["message"]]
    assert inside
    assert all(e["request_id"] == "trace-me" for e in inside)
    assert inside[0]["level"] == "warning"
    assert "exception" not in inside[0]  # a failing probe is one line, no traceback
    assert entries[-1]["message"] == "outside a request"
    assert "request_id" not in entries[-1]
