"""Bodies that arrive as JSON or as a form (web forms post both ways), decoded into one Struct."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException

from orbsurv.adapters.http.inputs import check_strings, decode_json
from orbsurv.adapters.http.media import FORM_TYPES, is_json, media_type, strict_validation_error

T = TypeVar("T")


async def bounded_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body, refused with 413 ``payload_too_large`` as soon as it is known to exceed
    ``limit`` bytes: from ``Content-Length`` before a byte is read, or while it streams (a
    chunked body has none). For routes whose bound is tighter than the application's."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(
    request: Request[Any, Any, Any], kind: type[T], *, optional: bool = False
) -> T | None:
    """JSON (strict types) or form fields (strings converted).

    ``None`` for an empty body when ``optional``."""
    body = await request.body()
    content_type = media_type(request)
    if not body:
        if optional:
            return None
        raise ValidationException(extra=[{"key": "body", "message": "a request body is required"}])
    try:
        if is_json(content_type):
            raw = decode_json(body)
            try:
                return msgspec.convert(raw, kind)
            except msgspec.ValidationError as exc:
                raise strict_validation_error(exc, kind, raw) from None
        if content_type in FORM_TYPES:
            form = await request.form()
            check_strings(form.multi_items())
            return msgspec.convert(dict(form.items()), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise strict_validation_error(exc) from None
    raise HTTPException(
        status_code=415,
        detail=f"Send JSON or a form (got {content_type or 'no Content-Type'}).",
    )
