"""Project routes: upload (streamed multipart), list, read, change, download, delete.

The upload body is parsed as it arrives (``multipart``'s push parser): text fields are kept (at
most 64 KiB each), the file part is handed to the use case as a stream of chunks, so nothing
holds the file in memory and the size limit applies as bytes arrive. The text fields may come
before or after the one file part (browsers send them in document order; a client generated from
the OpenAPI document sends the optional ones after the file): those after it are read once the
file's bytes were stored and applied before anything is validated for good or committed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from litestar import Request, Response, delete, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, InternalServerException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from multipart import MultipartError, MultipartSegment, ParserLimitReached, PushMultipartParser

from orbsurv.adapters.http.auth import SECURITY, current_principal, requires
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import inject, inject_app
from orbsurv.adapters.http.downloads import DOWNLOAD_DESCRIPTION, Downloadable, download_response
from orbsurv.adapters.http.openapi import documented, multipart_upload
from orbsurv.adapters.http.problems import ProblemDetail
from orbsurv.application.console.denials import RecordDenial
from orbsurv.application.files.ports import ProjectChanges
from orbsurv.application.files.projects import (
    CountDownload,
    DeleteProject,
    FindDownload,
    GetProject,
    ListProjects,
    NewProject,
    SetStorageQuota,
    UpdateProject,
    UploadProject,
    Viewer,
)
from orbsurv.application.ports import ObjectStorage
from orbsurv.application.slots import UploadGate
from orbsurv.domain.errors import FieldInvalid, FieldsConflict, Forbidden, InvalidInput
from orbsurv.domain.files import Project, Visibility, resolve_visibility
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.pagination import PageRequest

FIELD_MAX_BYTES = 64 * 1024
MAX_PARTS = 16
FIELDS = ("name", "description", "version", "is_public", "visibility")
# The most a body can carry in fields after its file (parts, their headers and values): the
# part of Content-Length that may not be the file's when the early size check runs.
AFTER_FILE_MAX = MAX_PARTS * (FIELD_MAX_BYTES + 8192 + 128)
ProjectId = Annotated[str, Parameter(max_length=64, description="The project's id")]
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=ProblemDetail,
        media_type="application/problem+json",
        description=description,
        generate_examples=False,
    )


class ProjectOut(msgspec.Struct, frozen=True):
    id: str
    owner_id: str
    name: str
    description: str
    version: str | None
    is_public: bool
    visibility: str
    file_name: str
    size: int
    sha256: str
    content_type: str
    downloads: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            owner_id=project.owner_id,
            name=project.name,
            description=project.description,
            version=project.version,
            is_public=project.visibility is Visibility.PUBLIC,
            visibility=project.visibility.value,
            file_name=project.file_name,
            size=project.size,
            sha256=project.sha256,
            content_type=project.content_type,
            downloads=project.downloads,
            created_at=project.created_at,
            updated_at=project.updated_at,
        )


class ProjectPage(msgspec.Struct, frozen=True):
    items: list[ProjectOut]
    total: int
    page: int
    page_size: int
    pages: int


class ProjectUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=5000)] | None = None
    is_public: bool | None = None
    visibility: Visibility | None = None


def viewer_of(request: Request[Any, Any, Any], principal: Principal) -> Viewer:
    return Viewer(
        user_id=principal.user_id,
        # An admin in any session; a dev only in a dev session (without it, a plain user).
        is_admin=principal.can(Permission.MANAGE_CONTENT),
        context=request_context(request),
        console_write=principal.can(Permission.ADMINISTER),
        refusal_code=principal.refusal_code(Permission.ADMINISTER),
    )


def _flag(value: str | None, field: str) -> bool | None:
    """A form field's true/false; ``None`` when absent or empty (an empty input counts as
    absent, docs/api.md); ``FieldInvalid`` on ``field`` for any other word."""
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise FieldInvalid(field, "must be true or false")


def _visibility(value: str | None) -> Visibility | None:
    """A form's ``visibility`` (public or private, any case); ``None`` when absent or empty."""
    if value is None or not value.strip():
        return None
    try:
        return Visibility(value.strip().lower())
    except ValueError:
        raise FieldInvalid("visibility", "must be public or private") from None


class _Form:
    """Pull-based events over a streamed multipart body.

    Text fields may come in any order around the one file part (a client generated from the
    OpenAPI document sends the required ones, the file among them, before the optional ones):
    ``until_file`` reads the fields before the file into ``fields``; ``file_body`` yields the
    file's bytes as they arrive and then reads the fields after it into ``fields`` too, each
    bounded by ``FIELD_MAX_BYTES`` and all by ``MAX_PARTS``, so a caller applies them once the
    stream ended (before it validates and commits). A field sent twice, anywhere, is a 422."""

    END = object()

    def __init__(self, request: Request[Any, Any, Any], boundary: str) -> None:
        self._source = request.stream()
        self._parser = PushMultipartParser(
            boundary, max_header_size=8192, max_header_count=8, max_segment_count=MAX_PARTS
        )
        self._events: deque[MultipartSegment | bytes | None] = deque()
        self.received = 0
        self._done = False
        self.fields: dict[str, str] = {}
        self._known: tuple[str, ...] = ()

    def queued_bytes(self) -> int:
        return sum(len(e) for e in self._events if isinstance(e, bytes | bytearray))

    async def until_file(self, known: tuple[str, ...]) -> MultipartSegment:
        """Read the parts before the file part into ``fields`` (only the names in ``known``
        are kept; every part is read within its bound) and return the file part's header.
        Raises ``FieldInvalid`` for a file under another name, a field sent twice or no file."""
        self._known = known
        while (event := await self.next()) is not self.END:
            if not isinstance(event, MultipartSegment):
                continue
            if event.filename is not None:
                if event.name != "file":
                    raise FieldInvalid(event.name, "Only the part named file may carry a file.")
                return event
            await self._field(event.name)
        raise FieldInvalid("file", "The upload needs a file part named file.")

    async def _field(self, name: str) -> None:
        if name in self.fields:
            raise FieldInvalid(name, "was sent twice")
        value = await self.read_field(name)
        if name in self._known:
            self.fields[name] = value

    async def next(self) -> MultipartSegment | bytes | object | None:
        while not self._events:
            if self._done:
                return self.END
            try:
                chunk = await anext(self._source, b"")
            except InternalServerException:  # Litestar's word for a client that went away
                raise InvalidInput(
                    "The client disconnected before the upload ended.", code="upload_interrupted"
                ) from None
            self.received += len(chunk)
            try:
                self._events.extend(self._parser.parse(chunk))
            except ParserLimitReached as error:
                raise InvalidInput(
                    f"The multipart body is over a limit ({error}): at most {MAX_PARTS} parts, "
                    "8 headers and 8 KiB of headers per part.",
                    code="malformed_body",
                ) from None
            except MultipartError as error:
                raise InvalidInput(
                    f"The multipart body is malformed: {error}", code="malformed_body"
                ) from None
            if not chunk:
                if not self._parser.closed:
                    raise InvalidInput("The multipart body ended early.", code="malformed_body")
                self._done = True
        return self._events.popleft()

    async def read_field(self, name: str) -> str:
        value = bytearray()
        while (event := await self.next()) is not None:
            if not isinstance(event, bytes | bytearray):
                raise InvalidInput("The multipart body is malformed.", code="malformed_body")
            value += event
            if len(value) > FIELD_MAX_BYTES:
                raise FieldInvalid(name, f"is longer than {FIELD_MAX_BYTES} bytes")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise FieldInvalid(name, "is not valid UTF-8") from None

    async def file_body(self) -> AsyncIterator[bytes]:
        """The file part's bytes; then the text fields after it, into ``fields`` (a second
        file part is refused before anything is kept)."""
        while (event := await self.next()) is not None:
            if isinstance(event, bytes | bytearray):
                yield bytes(event)
        while (event := await self.next()) is not self.END:
            if not isinstance(event, MultipartSegment):
                continue
            if event.filename is not None:
                raise FieldInvalid("file", "Send one file part.")
            await self._field(event.name)


@contextmanager
def form_names(names: Mapping[str, str]) -> Iterator[None]:
    """Errors raised inside name fields as the form calls them: ``names`` maps a use case's
    field name to the form field it came from (``package_name`` → ``name``), so a 422 never
    names a field the client did not send."""
    try:
        yield
    except FieldsConflict as error:
        error.fields = tuple(names.get(f, f) for f in error.fields)
        error.field = error.fields[0]
        raise
    except FieldInvalid as error:
        error.field = names.get(error.field, error.field)
        raise


def _boundary(request: Request[Any, Any, Any]) -> str:
    content_type, options = request.content_type
    if content_type != "multipart/form-data" or not options.get("boundary"):
        raise HTTPException(
            status_code=415, detail="Send the upload as multipart/form-data with a boundary."
        )
    return options["boundary"]


@post(
    "/projects",
    tags=["projects"],
    summary="Upload a project",
    description=(
        "multipart/form-data with the fields `name`, `description`, `version` (optional), "
        "`is_public` (true/false) or `visibility` (public/private; with both, they must "
        "agree), and one `file` part; the text fields may come in any order, before or after "
        "the file (each at most 64 KiB, 16 parts in all). The file streams to "
        "storage while it is hashed (SHA-256) and scanned for malware; `Content-Length` is "
        "required and checked against `MAX_UPLOAD_BYTES` and the storage quota before any byte "
        "is stored; the limit also applies as bytes arrive. Refused uploads keep nothing."
    ),
    status_code=201,
    security=SECURITY,
    request_max_body_size=None,
    opt=documented(
        content=multipart_upload(
            {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "version": {"type": "string"},
                "is_public": {"type": "boolean", "default": False},
                "visibility": {"type": "string", "enum": ["public", "private"]},
            },
            required=["name"],
        )
    ),
    responses={
        400: _problem("The multipart body is malformed."),
        401: _problem("Not signed in."),
        411: _problem("No Content-Length."),
        413: _problem("Past MAX_UPLOAD_BYTES or the storage quota (`quota_exceeded`)."),
        408: _problem("The body stalled or took too long (`request_timeout`); nothing kept."),
        415: _problem("Not multipart/form-data."),
        422: _problem(
            "A field, the file name or extension is invalid, the file is empty or missing, "
            "or it carries malware (`malware_detected`)."
        ),
        429: _problem(
            "Too many uploads of yours in progress (`too_many_uploads`), or more than "
            "`PROJECT_UPLOADS_PER_HOUR` started within the hour (`rate_limited`, Retry-After)."
        ),
        503: _problem("Storage (`storage_unavailable`) or scanner (`scanner_unavailable`) down."),
    },
)
@inject_app
async def upload_project(
    request: Request[Any, Any, Any],
    use_case: FromDishka[UploadProject],
    gate: FromDishka[UploadGate],
) -> ProjectOut:
    principal = await current_principal(request)
    boundary = _boundary(request)
    length = request.content_length
    if length is None:
        raise HTTPException(status_code=411, detail="Send a Content-Length with the upload.")
    async with gate.hold(principal.user_id):
        return await _upload(request, principal, boundary, length, use_case)


async def _upload(
    request: Request[Any, Any, Any],
    principal: Principal,
    boundary: str,
    length: int,
    use_case: UploadProject,
) -> ProjectOut:
    form = _Form(request, boundary)
    file_name = (await form.until_file(FIELDS)).filename or ""
    # An upper bound of the file's size: what is left of the body once the parts before the
    # file are read (the parser may hold back a few bytes that could start a boundary).
    declared = max(0, length - (form.received - form.queued_bytes()))

    def new_project() -> NewProject:
        """The project the fields read so far describe (those after the file included, once
        its bytes were read). Raises ``FieldInvalid`` for a bad flag or visibility."""
        fields = form.fields
        visibility = resolve_visibility(
            _flag(fields.get("is_public"), "is_public"), _visibility(fields.get("visibility"))
        )
        return NewProject(
            name=fields.get("name", ""),
            description=fields.get("description", ""),
            version=fields.get("version"),
            is_public=visibility is Visibility.PUBLIC,
            file_name=file_name,
            declared_size=declared,
            after_file_max=AFTER_FILE_MAX,
        )

    before = new_project()  # the fields before the file: refused early when bad
    project = await use_case(
        viewer_of(request, principal), before, form.file_body(), complete=new_project
    )
    return ProjectOut.of(project)


@get(
    "/projects",
    tags=["projects"],
    summary="List projects",
    description="Public projects and your own (admins: all), newest first; `q` searches "
    "names and descriptions.",
    security=SECURITY,
)
@inject
async def list_projects(
    request: Request[Any, Any, Any],
    paging: NamedDependency[PageRequest],
    use_case: FromDishka[ListProjects],
    q: Annotated[str | None, Parameter(max_length=200, description="Search text")] = None,
) -> ProjectPage:
    principal = await current_principal(request)
    page = await use_case(viewer_of(request, principal), paging, q)
    return ProjectPage(
        items=[ProjectOut.of(p) for p in page.items],
        total=page.total,
        page=page.page,
        page_size=page.page_size,
        pages=page.pages,
    )


@get(
    "/projects/{project_id:str}",
    tags=["projects"],
    summary="One project",
    security=SECURITY,
    responses={404: _problem("No such project, or another user's private project.")},
)
@inject
async def get_project(
    request: Request[Any, Any, Any], project_id: ProjectId, use_case: FromDishka[GetProject]
) -> ProjectOut:
    principal = await current_principal(request)
    return ProjectOut.of(await use_case(viewer_of(request, principal), project_id))


@route(
    "/projects/{project_id:str}",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT],
    tags=["projects"],
    summary="Change a project",
    description="Owner only: name, description, visibility (`is_public` or `visibility`; "
    "when both are sent they must agree, else 422 `validation_error` naming both and nothing "
    "changes). PATCH and PUT both merge: fields left out keep their value.",
    security=SECURITY,
    responses={
        403: _problem("Not the owner of this (visible) project."),
        404: _problem("No such project, or another user's private project."),
    },
)
@inject
async def update_project(
    request: Request[Any, Any, Any],
    project_id: ProjectId,
    data: JSONBody[ProjectUpdate],
    use_case: FromDishka[UpdateProject],
) -> ProjectOut:
    principal = await current_principal(request)
    visibility = resolve_visibility(data.is_public, data.visibility)
    changes = ProjectChanges(name=data.name, description=data.description, visibility=visibility)
    project = await use_case(viewer_of(request, principal), project_id, changes)
    return ProjectOut.of(project)


@route(
    "/projects/{project_id:str}/download",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["projects"],
    summary="Download a project's file",
    description=DOWNLOAD_DESCRIPTION,
    security=SECURITY,
    media_type="application/octet-stream",
    responses={
        206: ResponseSpec(
            data_container=bytes, description="One range of the file.", generate_examples=False
        ),
        304: ResponseSpec(data_container=None, description="The ETag matched If-None-Match."),
        404: _problem(
            "No such project, or another user's private project; `object_missing` when its "
            "stored file is lost."
        ),
        416: _problem("The range cannot be served; Content-Range: bytes */size."),
        503: _problem("Storage unavailable (`storage_unavailable`, Retry-After)."),
    },
)
@inject
async def download_project(
    request: Request[Any, Any, Any],
    project_id: ProjectId,
    find: FromDishka[FindDownload],
    count: FromDishka[CountDownload],
    storage: FromDishka[ObjectStorage],
) -> Response[Any]:
    principal = await current_principal(request)
    project = await find(viewer_of(request, principal), project_id)
    item = Downloadable(
        key=project.object_key,
        size=project.size,
        sha256=project.sha256,
        modified_at=project.created_at,
        file_name=project.file_name,
    )
    return await download_response(request, storage, item, on_complete=lambda: count(project.id))


@delete(
    "/projects/{project_id:str}",
    tags=["projects"],
    summary="Delete a project (owner, or a dev session)",
    description="Your own project, or (a console write) anyone's from a dev session: the dev "
    "role signed in with a one-time code. The row and the stored file both go; audited as "
    "`project.deleted`. A refusal (403 `dev_session_required` for a dev without the code, "
    "`forbidden` otherwise, admins included) is audited as `access.denied`.",
    security=SECURITY,
    responses={
        403: _problem("Neither the owner nor a dev session (`dev_session_required`)."),
        404: _problem("No such project, or another user's private project."),
    },
)
@inject
async def delete_project(
    request: Request[Any, Any, Any],
    project_id: ProjectId,
    use_case: FromDishka[DeleteProject],
    denials: FromDishka[RecordDenial],
) -> None:
    principal = await current_principal(request)
    context = request_context(request)
    try:
        await use_case(viewer_of(request, principal), project_id)
    except Forbidden:
        # On the request's own connection: a request never takes a second one from the pool.
        await denials(principal, request.url.path, context)
        raise


class QuotaIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    quota_bytes: Annotated[int, msgspec.Meta(ge=0, le=2**62)] | None


class QuotaOut(msgspec.Struct, frozen=True):
    user_id: str
    used_bytes: int
    reserved_bytes: int
    quota_bytes: int
    free_bytes: int


@route(
    "/admin/users/{user_id:str}/storage-quota",
    http_method=[HttpMethod.PUT],
    tags=["console"],
    summary="Set a user's storage quota (dev)",
    description="A console write: it needs a dev session (the dev role, signed in with a "
    "one-time code), settled before the body is read; a refusal is 403 (`dev_session_required` "
    "for a dev without the code, `forbidden` otherwise, admins included: nobody raises their own "
    "quota without the second factor) and is audited as `access.denied`. `quota_bytes` in "
    "bytes, or null for USER_QUOTA_BYTES. Stored files stay; a quota below them blocks new "
    "uploads. The change is audited as `storage.quota_set`.",
    security=SECURITY,
    dependencies={"operator": Provide(requires(Permission.ADMINISTER))},
    responses={
        403: _problem("Not a dev session (`dev_session_required`, `forbidden`)."),
        404: _problem("No such user."),
    },
)
@inject
async def set_storage_quota(
    request: Request[Any, Any, Any],
    operator: NamedDependency[Principal],
    user_id: Annotated[str, Parameter(max_length=64)],
    data: JSONBody[QuotaIn],
    use_case: FromDishka[SetStorageQuota],
) -> QuotaOut:
    usage = await use_case(operator, user_id, data.quota_bytes, request_context(request))
    return QuotaOut(
        user_id=user_id,
        used_bytes=usage.used,
        reserved_bytes=usage.reserved,
        quota_bytes=usage.quota,
        free_bytes=usage.free,
    )


PROJECT_ROUTES = [
    set_storage_quota,
    upload_project,
    list_projects,
    get_project,
    update_project,
    download_project,
    delete_project,
]
