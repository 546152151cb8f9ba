"""Request body media types: a JSON route answers 415 to anything but JSON, 422 to no body;
and every request's strings and JSON depth are screened first (``inputs``)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Litestar, Request
from litestar.datastructures import FormMultiDict
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import BodyKwarg
from litestar.routes import HTTPRoute
from litestar.utils.scope.state import ScopeState

from orbsurv.adapters.http.context import header
from orbsurv.adapters.http.inputs import (
    MalformedBody,
    check_headers,
    check_strings,
    decode_json,
    nfc,
    nfc_pairs,
    nfc_tree,
)

SINGLE_VALUED = "single_valued_query"  # app.state: what ``single_valued_query`` built


def single_valued_query(app: Litestar) -> dict[BaseRouteHandler, frozenset[str]]:
    """For each route handler of ``app``, its query parameters that take one value, its own and
    those of the dependencies it resolves (the paging dependency's ``page``, ``page_size`` and
    ``limit``), by the name a client sends, as Litestar's parameter model of the route has
    them. A query that repeats one is refused rather than have one of its values win
    silently; a name that is no query parameter (``request``, a dependency's) is ignored like
    any unknown name. Built once, after the routes are registered."""
    table: dict[BaseRouteHandler, frozenset[str]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler, model in route.route_handler_map.values():
                names = frozenset(
                    p.field_alias for p in model.expected_query_params if not p.is_sequence
                )
                table[handler] = table.get(handler, frozenset()) | names
    return table


@cache
def body_model(handler: HTTPRouteHandler) -> Any:
    """The type the handler's ``data`` parameter declares (a msgspec Struct here)."""
    return handler.parsed_fn_signature.parameters["data"].annotation


@cache
def expected_body_type(handler: HTTPRouteHandler) -> str | None:
    """The media type the handler's ``data`` parameter decodes, or ``None`` without one."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    kwarg = data.kwarg_definition
    if isinstance(kwarg, BodyKwarg):
        media_type = kwarg.media_type
        return media_type.value if isinstance(media_type, RequestEncodingType) else media_type
    return RequestEncodingType.JSON.value


_PATH = re.compile(r"\s*-\s*at `\$\.?([^`]*)`")


_ANY_KEY = "[...]"  # how msgspec names a value of a mapping in an error path


def strict_validation_error(
    exc: msgspec.ValidationError, model: Any = None, raw: Any = None
) -> ValidationException:
    """msgspec's error as a 422 naming the field as the client sent it. msgspec names a
    mapping's value ``metadata[...]``; given the ``model`` and the ``raw`` decoded body, the key
    the client sent is found (``metadata.note``) by validating the mapping one key at a time."""
    message = str(exc)
    found = _PATH.search(message)
    field = found.group(1) if found and found.group(1) else "body"
    if _ANY_KEY in field and model is not None and raw is not None:
        field = _name_the_key(field, model, raw)
    return ValidationException(extra=[{"key": field, "message": _PATH.sub("", message)}])


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+|\.\.\.)\]")


def _name_the_key(field: str, model: Any, raw: Any) -> str:
    """``field`` with its first ``[...]`` replaced by the key of ``raw`` whose value fails
    ``model`` alone (the first such key), or ``field`` unchanged when none can be singled out."""
    prefix, _, rest = field.partition(_ANY_KEY)
    steps = [int(i) if i.isdigit() else (name or i) for name, i in _STEP.findall(prefix)]
    mapping: Any = raw
    for step in steps:
        try:
            mapping = mapping[step]
        except (KeyError, IndexError, TypeError):
            return field
    if not isinstance(mapping, dict):
        return field
    original = dict(mapping)
    try:
        for key, value in original.items():
            mapping.clear()
            mapping[key] = value
            try:
                msgspec.convert(raw, model)
            except msgspec.ValidationError:
                return f"{prefix}.{key}{rest}"
    finally:
        mapping.clear()
        mapping.update(original)
    return field


def media_type(request: Request[Any, Any, Any]) -> str:
    """The request's media type (RFC 9110 section 8.3.1) in lower case, without parameters; ""
    without a ``Content-Type``. Read from the raw header: no header map is built and nothing is
    parsed for the many requests that carry no body."""
    value = header(request.scope["headers"], b"content-type")
    return "" if value is None else value.partition(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    """``application/json`` or a structured ``application/…+json`` type (RFC 6839)."""
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
NOT_UTF8_FORM = "The form is not UTF-8 text."


async def form_fields(request: Request[Any, Any, Any]) -> list[tuple[str, Any]]:
    """The fields of a form body, each one as often as it was sent.

    Raises ``MalformedBody`` (400) when a field is not UTF-8 (WHATWG URL standard,
    application/x-www-form-urlencoded; RFC 7578 section 5.1 for multipart): the url-encoded
    parser would put U+FFFD in place of the bytes, the multipart one fails outright."""
    if media_type(request) == "application/x-www-form-urlencoded":
        try:
            unquote_to_bytes((await request.body()).replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody(detail=NOT_UTF8_FORM) from None
    try:
        form = await request.form()
    except (UnicodeDecodeError, LookupError):  # LookupError: a part names an unknown charset
        raise MalformedBody(detail=NOT_UTF8_FORM) from None
    return list(form.multi_items())


def _normalise_query(request: Request[Any, Any, Any]) -> None:
    """The parsed query, names and values in NFC, cached where Litestar's parameter extraction
    and ``request.query_params`` read it."""
    pairs = tuple(request.query_params.multi_items())
    normal = tuple(nfc_pairs(pairs))
    if normal != pairs:
        request._parsed_query = normal
        ScopeState.from_scope(request.scope).parsed_query = normal


def _normalise_form(request: Request[Any, Any, Any], fields: list[tuple[str, Any]]) -> None:
    """The parsed form with its text in NFC, cached where ``request.form()`` and the handler's
    ``data`` extraction read it (a multi-valued field stays a list)."""
    normal = nfc_pairs(fields)
    if normal == fields:
        return
    data: dict[str, Any] = {}
    for name, value in normal:
        if name in data:
            previous = data[name]
            data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[name] = value
    ScopeState.from_scope(request.scope).form = data
    request._form = FormMultiDict.from_form_data(data)


def _replace_body(request: Request[Any, Any, Any], body: bytes) -> None:
    request._body = body
    ScopeState.from_scope(request.scope).body = body


async def screen_request(request: Request[Any, Any, Any]) -> None:
    """The strings of the request line and headers must be storable (``inputs``): the stored
    headers, path and query parameters (400, 422), a single-valued query parameter given once
    (422); then path and query text is brought to NFC (``inputs.nfc``) where every later reader
    finds it. The body is not read: a refused caller's denial is audited with the path and user
    agent, which must be storable, but whether the caller may use the route is settled before
    anything they sent in the body is judged (``screen_body``)."""
    check_headers(request.scope["headers"])
    if request.scope.get("path_params"):
        check_strings(request.path_params.items())
        params = request.scope["path_params"]
        for name, value in params.items():
            if isinstance(value, str):
                params[name] = nfc(value)
    handler = request.route_handler
    if request.scope.get("query_string"):
        query = request.query_params
        check_strings(query.multi_items())
        once = request.app.state[SINGLE_VALUED].get(handler, frozenset())
        for name in query:
            if name in once and len(query.getall(name)) > 1:
                raise ValidationException(extra=[{"key": name, "message": "give it once"}])
        _normalise_query(request)


async def screen_body(request: Request[Any, Any, Any]) -> None:
    """A JSON or form body, whatever the handler does with it: not JSON, not UTF-8, or JSON
    nested deeper than ``inputs`` allows is 400 ``malformed_body``; a string the database cannot
    store is 422 naming the field; then its text is brought to NFC where every later reader
    finds it. Run after the permission gate (``check_permissions``), so a caller who may not use
    the route is told 403, and audited, whatever the body. Upload routes (no body size limit:
    they stream) are left their body: buffering it here would defeat the streaming, so they
    screen their own form fields (and their use cases normalise them)."""
    handler = request.route_handler
    if isinstance(handler, HTTPRouteHandler) and handler.request_max_body_size is None:
        return  # an upload route streams its own body and screens its own fields as they arrive
    content_type = media_type(request)
    if is_json(content_type):
        body = await request.body()
        if body:
            value = decode_json(body)
            normal = nfc_tree(value)
            if normal is not value:
                _replace_body(request, msgspec.json.encode(normal))
    elif content_type in FORM_TYPES and await request.body():
        fields = await form_fields(request)
        check_strings(fields)
        _normalise_form(request, fields)


async def enforce_body_media_type(request: Request[Any, Any, Any]) -> None:
    """Part of the ``before_request`` hook, after ``screen_body``: a JSON route's body must
    be there, be JSON and match its model strictly (415, 422) before the handler decodes it."""
    handler = request.route_handler
    if (
        not isinstance(handler, HTTPRouteHandler)
        or expected_body_type(handler) != "application/json"
    ):
        return
    if not await request.body():
        raise ValidationException(extra=[{"key": "body", "message": "a JSON body is required"}])
    content_type = media_type(request)
    if not is_json(content_type):
        received = content_type or "no Content-Type"
        raise HTTPException(
            status_code=415, detail=f"Send this request as application/json (got {received})."
        )
    # Litestar converts bodies leniently (0 would become False); JSON bodies here are strict.
    body = await request.body()
    try:
        msgspec.json.decode(body, type=body_model(handler))
    except msgspec.ValidationError as exc:
        raw = msgspec.json.decode(body) if _ANY_KEY in str(exc) else None
        raise strict_validation_error(exc, body_model(handler), raw) from None
