"""problem+json: every failure path answers in one shape with a stable ``code``.

Domain errors map to statuses here, in one place. A 500 never carries exception text and means
a bug of ours: a dependency's failure is 503 with ``Retry-After`` (``dependency_unavailable`` or
the dependency's own code; SQLAlchemy's errors are classified by ``database_unavailable``) and a
full disk is 507 ``insufficient_storage``, each logged as one line naming the root cause's class.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orbsurv.adapters.http.enums import (
    INVALID_ENUM,
    NOT_MATCHING,
    allowed_values,
    enum_message,
    rule_of,
)
from orbsurv.adapters.http.inputs import MalformedBody
from orbsurv.adapters.persistence.database import database_unavailable
from orbsurv.application.errors import ObjectTooLarge, StorageFull
from orbsurv.application.faults import root_cause
from orbsurv.domain import errors as domain
from orbsurv.domain import packages as uploads

logger = logging.getLogger("orbsurv.http")

PROBLEM_MEDIA_TYPE = "application/problem+json"

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    411: "length_required",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "dependency_unavailable",
    507: "insufficient_storage",
}

#: Seconds a client is asked to wait before retrying after a dependency's failure.
RETRY_AFTER_SECONDS = 1

_STATUS_BY_ERROR: list[tuple[type[domain.DomainError], int]] = [
    # resumable uploads (tus 1.0: 410 for an expired upload, 460 for a checksum mismatch)
    (uploads.UploadExpired, 410),
    (uploads.UploadTooLarge, 413),
    (uploads.UploadBusy, 423),
    (uploads.ChecksumMismatch, 460),
    (domain.FieldInvalid, 422),
    (domain.InvalidInput, 400),
    (domain.NotFound, 404),
    (domain.Conflict, 409),
    (domain.Unauthenticated, 401),
    (domain.Forbidden, 403),
    (domain.RateLimited, 429),
    (StorageFull, 507),
    (domain.DependencyUnavailable, 503),
    (ObjectTooLarge, 413),
]


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class ProblemDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[FieldError] | None = None


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[Any]:
    code = code or _CODE_BY_STATUS.get(status, "error")
    body: dict[str, Any] = {
        "type": f"urn:orbsurv:problem:{code}",
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    if errors:
        body["errors"] = [msgspec.structs.asdict(error) for error in errors]
    if extra:
        body.update(extra)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def unavailable(
    request: Request[Any, Any, Any],
    detail: str,
    code: str,
    *,
    retry_after: int = RETRY_AFTER_SECONDS,
) -> Response[Any]:
    """The answer to a dependency's fault: 503 ``code`` with ``Retry-After: retry_after``
    (seconds). The caller logs the fault; ``detail`` names the dependency and never carries
    driver text (API.md, Conventions, Faults)."""
    return problem(request, 503, detail, code=code, headers={"Retry-After": str(retry_after)})


_MISSING_FIELD = re.compile(r"Object missing required field `([^`]+)`")
# Litestar's kwargs extractor raises a bare ValidationException (no ``extra``) when a required
# query, header, cookie or path parameter is absent; its detail names the parameter by its
# alias in repr quotes, then the path and query string (which we never echo).
_MISSING_PARAMETER = re.compile(
    r"Missing required (?P<kind>\w+) parameter (?P<quote>['\"])(?P<name>.+?)(?P=quote) for path "
)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]+)`")


def _field_error(item: dict[str, Any]) -> FieldError:
    """Litestar's error entry as ``{field, message}``, naming the body field, never ``data``."""
    key = str(item.get("key") or "")
    field = "body" if key in {"", "data"} else key
    message = str(item.get("message") or "is invalid")
    for pattern, meaning in (
        (_MISSING_FIELD, "is required"),
        (_UNKNOWN_FIELD, "is not a field of this request; nothing was changed"),
    ):
        if found := pattern.match(message):
            name = found.group(1)
            return FieldError(field=name if field == "body" else f"{field}.{name}", message=meaning)
    return FieldError(field=field, message=message)


def _field_errors(extra: Any) -> list[FieldError]:
    items = extra if isinstance(extra, list) else []
    return [_field_error(item) for item in items if isinstance(item, dict)]


def _field_sentence(error: FieldError) -> str:
    message = error.message.strip()
    text = f"{error.field}: {message[:1].lower()}{message[1:]}"
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _missing_parameter(detail: str) -> list[FieldError]:
    """``[{field: <parameter name>, message: "is required (a <kind> parameter)"}]`` for
    Litestar's missing-parameter error, else ``[]``."""
    found = _MISSING_PARAMETER.match(detail)
    if found is None:
        return []
    kind = found.group("kind")
    return [FieldError(field=found.group("name"), message=f"is required (a {kind} parameter)")]


def _documented_bodies(handler: Any) -> tuple[Any, ...]:
    """The body types a handler that decodes its own body documents (``openapi.documented``)."""
    body = getattr((getattr(handler, "opt", None) or {}).get("openapi"), "body", None)
    if body is None:
        return ()
    return body if isinstance(body, tuple) else (body,)


def _with_allowed_values(request: Request[Any, Any, Any], error: FieldError) -> FieldError:
    """An "Invalid enum value" error rewritten to list the values the field takes
    (``enums.allowed_values``), a pattern mismatch to say the field's rule in words
    (``enums.rule_of``); other errors as they are."""
    handler = request.scope.get("route_handler")
    if mismatch := NOT_MATCHING.match(error.message):
        rule = rule_of(handler, error.field, _documented_bodies(handler))
        if rule is None:
            return error
        message = f"{rule.rstrip('.')} (the pattern {mismatch.group('pattern')})"
        return FieldError(field=error.field, message=f"must be: {message[:1].lower()}{message[1:]}")
    found = INVALID_ENUM.match(error.message)
    if found is None:
        return error
    values = allowed_values(handler, error.field, _documented_bodies(handler))
    if not values:
        return error
    return FieldError(field=error.field, message=enum_message(found.group("got"), values))


def _validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """422 ``validation_error`` with one ``errors`` entry per field: from Litestar's ``extra``
    (body fields, parameters that fail their constraints) or, for a required parameter that was
    left out, from the exception's detail (``_missing_parameter``)."""
    errors = _field_errors(exc.extra) or _missing_parameter(str(exc.detail or ""))
    errors = [_with_allowed_values(request, error) for error in errors]
    if len(errors) == 1:
        detail = _field_sentence(errors[0])
    elif errors:
        detail = f"Invalid values for {', '.join(e.field for e in errors)}."
    else:
        detail = "The request is invalid."
    return problem(request, 422, detail, errors=errors or None)


def _caused_by_decoding(exc: BaseException) -> bool:
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, SerializationException | msgspec.DecodeError):
            return True
        cause = cause.__cause__
    return False


def _http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        if status == 500:
            logger.error("internal error", exc_info=exc)
        detail = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return problem(request, status, f"{detail}.", headers=exc.headers)
    detail = exc.detail or HTTPStatus(status).phrase
    if isinstance(exc, MalformedBody):
        return problem(request, 400, detail, code="malformed_body", headers=exc.headers)
    if status == 400 and _caused_by_decoding(exc):
        detail = "The request body is not valid JSON."
        return problem(request, 400, detail, code="malformed_body", headers=exc.headers)
    if status == 413:
        detail = "The request body is too large."
    return problem(request, status, detail, headers=exc.headers)


def _domain_handler(request: Request[Any, Any, Any], exc: domain.DomainError) -> Response[Any]:
    status = next((s for kind, s in _STATUS_BY_ERROR if isinstance(exc, kind)), 400)
    headers: dict[str, str] = {}
    if isinstance(exc, domain.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, domain.DependencyUnavailable) and not isinstance(exc, StorageFull):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        # one line, no traceback: the root cause's class says which failure it was
        logger.warning("%s on %s %s%s", exc.code, request.method, request.url.path, root_cause(exc))
    if isinstance(exc, StorageFull):
        logger.warning("storage full on %s %s", request.method, request.url.path)
    if isinstance(exc, uploads.OffsetMismatch):
        headers["Upload-Offset"] = str(exc.expected)
        return problem(
            request,
            status,
            exc.message,
            code=exc.code,
            headers=headers,
            extra={"offset": exc.expected},
        )
    if isinstance(exc, domain.FieldsConflict):
        conflict = [
            FieldError(
                field=name,
                message="disagrees with " + ", ".join(f for f in exc.fields if f != name),
            )
            for name in exc.fields
        ]
        return problem(request, status, exc.message, code=exc.code, errors=conflict)
    if isinstance(exc, domain.FieldInvalid):
        error = FieldError(field=exc.field, message=exc.message)
        return problem(request, status, _field_sentence(error), code=exc.code, errors=[error])
    return problem(request, status, exc.message, code=exc.code, headers=headers)


def _database_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if not database_unavailable(exc):
        return _unexpected_handler(request, exc)
    logger.warning(
        "database unavailable on %s %s%s", request.method, request.url.path, root_cause(exc)
    )
    return unavailable(
        request,
        "The database is busy or unavailable; try again in a moment.",
        "dependency_unavailable",
    )


def _unexpected_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "An unexpected error occurred.", code="internal_error")


exception_handlers: ExceptionHandlersMap = {
    ValidationException: _validation_handler,
    HTTPException: _http_handler,
    domain.DomainError: _domain_handler,
    DBAPIError: _database_handler,
    PoolTimeout: _database_handler,
    Exception: _unexpected_handler,
}


def _problem_schema() -> Schema:
    string = Schema(type=OpenAPIType.STRING)
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        properties={"field": string, "message": string},
        required=["field", "message"],
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "type": string,
            "title": string,
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": string,
            "code": string,
            "request_id": Schema(one_of=[string, Schema(type=OpenAPIType.NULL)]),
            "errors": Schema(type=OpenAPIType.ARRAY, items=field_error),
        },
        required=["type", "title", "status", "detail", "code"],
        description="RFC 9457 problem details; `code` is stable, `detail` is for people.",
    )


def document_problems(openapi: OpenAPI) -> None:
    """Make every operation's error responses describe the problem+json body we really send."""
    schema = _problem_schema()

    def error_response(description: str) -> OpenAPIResponse:
        return OpenAPIResponse(
            description=description,
            content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=schema)},
        )

    for path_item in (openapi.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch", "head", "options"):
            operation: Operation | None = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status, documented in list(responses.items()):
                content = getattr(documented, "content", None) or {}
                if any(media.startswith("text/html") for media in content):
                    continue  # an HTML page documented on purpose
                if status.startswith(("4", "5")):
                    responses[status] = error_response(HTTPStatus(int(status)).phrase)
            if operation.parameters or operation.request_body:
                responses.setdefault("422", error_response("Validation failed"))
            responses.setdefault("default", error_response("Any other error"))
            operation.responses = responses


__all__ = [
    "MediaType",
    "ProblemDetail",
    "document_problems",
    "exception_handlers",
    "problem",
    "unavailable",
]
