"""An enum error says what is allowed.

msgspec and Litestar refuse a value outside a ``Literal`` or an ``Enum`` with "Invalid enum value
'article'", which tells the client what it sent and not what it may send. ``allowed_values``
finds the values a field accepts from the types the route declares (its query and path
parameters, its ``data`` body, the bodies it documents for itself), so the 422 can list them:
"must be one of: api, knowledge, support, updates (got 'article')". A pattern error ("Expected
`str` matching regex '^[A-Za-z0-9]...'") is answered with the rule the field's schema describes
in words (``rule_of``), the regular expression after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec.inspect as mi
from litestar.handlers import HTTPRouteHandler

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
INVALID_ENUM = re.compile(r"^Invalid enum value (?P<got>.+)$")
NOT_MATCHING = re.compile(r"^Expected `str` matching regex (?P<pattern>.+)$")


def _path(field: str) -> list[str | int]:
    return [int(index) if index else name for name, index in _TOKEN.findall(field) if name or index]


def _leaf(info: mi.Type) -> list[Any] | None:
    if isinstance(info, mi.Metadata):
        return _leaf(info.type)
    if isinstance(info, mi.LiteralType):
        return list(info.values)
    if isinstance(info, mi.EnumType):
        return [member.value for member in info.cls]
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if (found := _leaf(member)) is not None:
                return found
    return None


def _description(info: mi.Type) -> list[Any] | None:
    if isinstance(info, mi.Metadata):
        text = (info.extra_json_schema or {}).get("description")
        return [text] if isinstance(text, str) else _description(info.type)
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if (found := _description(member)) is not None:
                return found
    return None


def _walk(info: mi.Type, path: list[str | int], leaf: Any = _leaf) -> list[Any] | None:
    if not path:
        return leaf(info)  # type: ignore[no-any-return]
    head, rest = path[0], path[1:]
    if isinstance(info, mi.Metadata):
        return _walk(info.type, path, leaf)
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if (found := _walk(member, path, leaf)) is not None:
                return found
        return None
    if isinstance(info, mi.StructType) and isinstance(head, str):
        for field in info.fields:
            if field.encode_name == head:
                return _walk(field.type, rest, leaf)
        return None
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _walk(info.item_type, rest, leaf) if isinstance(head, int) else None
    if isinstance(info, mi.DictType):
        return _walk(info.value_type, rest, leaf)
    return None


def _declared(handler: HTTPRouteHandler, name: str, documented: Iterable[Any]) -> list[Any]:
    """The types that could hold ``name``: a parameter of that name (or alias), the body."""
    types: list[Any] = []
    for parameter in handler.parsed_fn_signature.parameters.values():
        kwarg = parameter.kwarg_definition
        aliases = {parameter.name}
        for attribute in ("query", "header", "cookie"):
            if (alias := getattr(kwarg, attribute, None)) is not None:
                aliases.add(alias)
        if name in aliases:
            types.append((parameter.annotation, False))
        elif parameter.name == "data":
            types.append((parameter.annotation, True))
    types.extend((kind, True) for kind in documented)
    return types


def allowed_values(handler: Any, field: str, documented: Iterable[Any] = ()) -> list[Any] | None:
    """The values ``field`` (as the client named it: ``type``, ``events[0].event_type``) takes
    on ``handler``'s route when it is an enum, else ``None``."""
    return _lookup(handler, field, documented, _leaf)


def rule_of(handler: Any, field: str, documented: Iterable[Any] = ()) -> str | None:
    """The ``description`` the schema gives ``field`` on ``handler``'s route, else ``None``."""
    found = _lookup(handler, field, documented, _description)
    return str(found[0]) if found else None


def _lookup(handler: Any, field: str, documented: Iterable[Any], leaf: Any) -> list[Any] | None:
    if not isinstance(handler, HTTPRouteHandler):
        return None
    path = _path(field)
    if not path:
        return None
    for annotation, is_body in _declared(handler, str(path[0]), documented):
        try:
            info = mi.type_info(annotation)
        except (TypeError, ValueError):  # not a type msgspec knows (Request, a dependency)
            continue
        found = _walk(info, path, leaf) if is_body else _walk(info, path[1:], leaf)
        if found:
            return found
    return None


def enum_message(got: str, values: list[Any]) -> str:
    """``must be one of: a, b, c (got 'x')``."""
    return f"must be one of: {', '.join(str(v) for v in values)} (got {got})"
