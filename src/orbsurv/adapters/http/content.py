"""The knowledge base over HTTP: anyone reads published resources; admins (and devs) also read
drafts and create, change and delete resources. Bodies are markdown returned raw, as stored:
clients render them and must sanitise the HTML they produce."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import Request, Response, delete, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from orbsurv.adapters.http.auth import SECURITY, access_token, requires
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import inject
from orbsurv.adapters.http.schemas import blank_to_none, exact
from orbsurv.application.content.manage import (
    CreateResource,
    DeleteResource,
    GetResource,
    ListResources,
    UpdateResource,
)
from orbsurv.application.content.ports import ResourceFilter
from orbsurv.domain.content import (
    BODY_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Resource,
    ResourceChange,
    ResourceDraft,
    ResourceType,
    checked_url,
    normalise_slug,
    storable,
)
from orbsurv.domain.errors import DomainError, FieldInvalid, NotFound
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.pagination import PageRequest

EDITORS = {"editor": Provide(requires(Permission.MANAGE_CONTENT))}
Editor = NamedDependency[Principal]
Paging = NamedDependency[PageRequest]
TypeName = Literal["api", "knowledge", "support", "updates"]
SlugPath = Annotated[str, Parameter(max_length=200, description="Case-insensitive")]


def statuses(**described: str) -> dict[int, ResponseSpec]:
    """Error statuses a route answers, for the OpenAPI document (bodies are problem+json)."""
    return {
        int(status.removeprefix("s")): ResponseSpec(None, description=text, generate_examples=False)
        for status, text in described.items()
    }


class ResourceOut(msgspec.Struct, frozen=True):
    id: str
    slug: str
    title: str
    type: str
    description: str
    url: str | None
    body: str
    published: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, resource: Resource) -> ResourceOut:
        return cls(
            id=resource.id,
            slug=resource.slug,
            title=resource.title,
            type=resource.type.value,
            description=resource.description,
            url=resource.url,
            body=resource.body,
            published=resource.published,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
        )


class ResourcePage(msgspec.Struct, frozen=True):
    items: list[ResourceOut]
    total: int
    page: int
    page_size: int
    pages: int


Title = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=TITLE_MAX_LENGTH,
        description="Trimmed; not blank",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX_LENGTH)]
Body = Annotated[
    str, msgspec.Meta(max_length=BODY_MAX_LENGTH, description="Markdown, stored and returned raw")
]
Url = Annotated[
    str,
    msgspec.Meta(
        max_length=2048,
        description='Absolute http or https URL with a host, without spaces; `""` for none',
        examples=[""],
        pattern=exact(r"^$|^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f]+[^\x00-\x20\x7f]*$"),
    ),
]
SlugIn = Annotated[
    str,
    msgspec.Meta(
        max_length=120,
        description="Letters, digits and single hyphens; lower-cased; made from the title if empty",
        pattern=exact(r"^$|^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$"),
    ),
]


class ResourceIn(msgspec.Struct, kw_only=True):
    title: Title
    type: TypeName
    description: Description = ""
    slug: SlugIn | None = None
    url: Url | None = None
    body: Body = ""
    published: bool = False


class ResourcePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change; ``url: null`` removes the link; ``""`` counts as absent."""

    title: Title | None = None
    type: TypeName | None = None
    description: Description | None = None
    slug: SlugIn | None = None
    url: Url | msgspec.UnsetType | None = msgspec.UNSET
    body: Body | None = None
    published: bool | None = None


def _text(value: str, field: str, *, required: bool = False) -> str:
    """Trimmed (the markdown body is kept as sent), storable, and not empty when required."""
    text = storable(value, field) if field == "body" else storable(value, field).strip()
    if required and not text:
        raise FieldInvalid(field, "must not be empty")
    return text


def _draft(data: ResourceIn) -> ResourceDraft:
    slug = blank_to_none(data.slug)
    url = blank_to_none(data.url)
    return ResourceDraft(
        title=_text(data.title, "title", required=True),
        type=ResourceType(data.type),
        description=_text(data.description, "description"),
        slug=normalise_slug(storable(slug, "slug")) if slug else None,
        url=checked_url(url) if url else None,
        body=_text(data.body, "body"),
        published=data.published,
    )


def _change(data: ResourcePatch) -> ResourceChange:
    slug = blank_to_none(data.slug)
    title = blank_to_none(data.title)
    url = data.url if isinstance(data.url, str) else None
    return ResourceChange(
        title=_text(title, "title") if title else None,
        type=ResourceType(data.type) if data.type else None,
        description=_text(data.description, "description")
        if data.description is not None
        else None,
        slug=normalise_slug(storable(slug, "slug")) if slug else None,
        url=checked_url(url) if url and url.strip() else None,
        clear_url=data.url is None,
        body=_text(data.body, "body") if data.body is not None else None,
        published=data.published,
    )


async def optional_reader(request: Request[Any, Any, Any]) -> Principal | None:
    """The signed-in caller, or ``None``: bad or stale credentials read as anonymous."""
    try:
        token = access_token(request)
        if token is None:
            return None
        principal: Principal = await request.app.state.authenticate(token)
    except DomainError:
        return None
    return principal


def _lookup(slug: str) -> str:
    """A path slug in canonical form; one that cannot exist is simply not found."""
    try:
        return normalise_slug(slug)
    except FieldInvalid:
        raise NotFound(f"No resource with slug {slug!r}.", code="resource_not_found") from None


@get(
    "/resources",
    tags=["resources"],
    summary="List resources",
    description=(
        "Anyone: published resources, newest first. Admins also see drafts (`published: "
        "false`). `type` filters by kind; `q` keeps resources whose title, description or body "
        "contain every word (case-insensitive). Bodies are raw markdown."
    ),
    dependencies={"reader": Provide(optional_reader)},
    responses=statuses(s422="A parameter is invalid"),
)
@inject
async def list_resources(
    reader: NamedDependency[Principal | None],
    paging: Paging,
    use_case: FromDishka[ListResources],
    type: Annotated[TypeName | None, Parameter(description="Only this kind")] = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Words to find")] = None,
) -> ResourcePage:
    query = blank_to_none(storable(q, "q")) if q else None
    where = ResourceFilter(type=ResourceType(type) if type else None, q=query, include_drafts=True)
    found = await use_case(reader, where, paging)
    return ResourcePage(
        items=[ResourceOut.of(resource) for resource in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


@get(
    "/resources/{slug:str}",
    tags=["resources"],
    summary="One resource (slug is case-insensitive)",
    description="A draft is 404 to everyone but admins. The body is raw markdown.",
    dependencies={"reader": Provide(optional_reader)},
    responses=statuses(s404="No such resource (or a draft)"),
)
@inject
async def get_resource(
    reader: NamedDependency[Principal | None], slug: SlugPath, use_case: FromDishka[GetResource]
) -> ResourceOut:
    return ResourceOut.of(await use_case(reader, _lookup(slug)))


@post(
    "/resources",
    tags=["resources"],
    summary="Create a resource (admin)",
    description=(
        "201 with the resource and its `Location`. The slug is lower-cased, or made from the "
        "title when absent (a taken generated slug gets a `-2`, `-3`... suffix); a slug that "
        "exists in any letter case is 409 `slug_taken`. `url` must be http or https. Audited."
    ),
    status_code=201,
    dependencies=EDITORS,
    security=SECURITY,
    responses=statuses(
        s401="Not signed in",
        s403="Not an admin",
        s409="The slug is taken (`slug_taken`)",
        s422="A field is invalid",
    ),
)
@inject
async def create_resource(
    request: Request[Any, Any, Any],
    editor: Editor,
    data: JSONBody[ResourceIn],
    use_case: FromDishka[CreateResource],
) -> Response[ResourceOut]:
    resource = await use_case(editor, _draft(data), request_context(request))
    return Response(
        ResourceOut.of(resource),
        status_code=201,
        headers={"Location": f"/api/v1/resources/{resource.slug}"},
    )


@route(
    "/resources/{slug:str}",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT],
    tags=["resources"],
    summary="Change a resource (admin)",
    description=(
        "Partial update (PATCH and PUT alike): fields left out keep their value, `url: null` "
        "removes the link, an unknown field is 422. Renaming to a taken slug is 409. Audited."
    ),
    dependencies=EDITORS,
    security=SECURITY,
    responses=statuses(
        s401="Not signed in",
        s403="Not an admin",
        s404="No such resource",
        s409="The new slug is taken (`slug_taken`)",
        s422="A field is invalid",
    ),
)
@inject
async def update_resource(
    request: Request[Any, Any, Any],
    editor: Editor,
    slug: SlugPath,
    data: JSONBody[ResourcePatch],
    use_case: FromDishka[UpdateResource],
) -> ResourceOut:
    change = _change(data)
    return ResourceOut.of(await use_case(editor, _lookup(slug), change, request_context(request)))


@delete(
    "/resources/{slug:str}",
    tags=["resources"],
    summary="Delete a resource (admin)",
    description="204; audited.",
    dependencies=EDITORS,
    security=SECURITY,
    responses=statuses(s401="Not signed in", s403="Not an admin", s404="No such resource"),
)
@inject
async def delete_resource(
    request: Request[Any, Any, Any],
    editor: Editor,
    slug: SlugPath,
    use_case: FromDishka[DeleteResource],
) -> None:
    await use_case(editor, _lookup(slug), request_context(request))


ROUTES = [list_resources, get_resource, create_resource, update_resource, delete_resource]
