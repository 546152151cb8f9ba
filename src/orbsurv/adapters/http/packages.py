"""Software packages over HTTP: the resumable upload protocol (ours and tus 1.0) and the catalogue.

Two doors to one upload session:

* ours: ``POST /uploads/init`` (JSON), ``HEAD|PATCH|DELETE /uploads/{id}``,
  ``POST /uploads/{id}/complete``;
* tus 1.0.0 (https://tus.io/protocols/resumable-upload): core (HEAD, PATCH, OPTIONS) plus the
  creation, termination, checksum and expiration extensions, so stock clients (tuspy,
  tus-js-client) upload unmodified. A tus upload completes by itself when its last byte is
  stored (tus clients never call ``/complete``).

A request that carries ``Tus-Resumable`` gets tus answers (204 on PATCH, ``Tus-Resumable`` on
every response); without it PATCH answers 200 with a JSON body. A ``Tus-Resumable`` other than
1.0.0 is 412 with ``Tus-Version`` (tus 1.0, "Tus-Resumable").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import msgspec
from dishka import FromDishka
from litestar import Request, Response, delete, get, head, post, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod, MediaType, ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from orbsurv.adapters.http.auth import SECURITY, current_principal, record_denial, requires
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import inject, inject_app
from orbsurv.adapters.http.downloads import (
    DOWNLOAD_DESCRIPTION,
    Downloadable,
    download_response,
    headers_only,
)
from orbsurv.adapters.http.openapi import documented, multipart_upload
from orbsurv.adapters.http.projects import _boundary, _flag, _Form, form_names
from orbsurv.adapters.http.schemas import exact
from orbsurv.application.packages.catalog import (
    CountPackageDownload,
    DeletePackage,
    FindVersion,
    ListPackages,
    ListVersions,
    PackageChanges,
    SummarisePackages,
    UpdatePackage,
    VersionListing,
)
from orbsurv.application.packages.ports import PackageView, UploadDetails
from orbsurv.application.packages.uploads import (
    CHECKSUM_ALGORITHMS,
    AbortUpload,
    AppendChunk,
    AppendUploadChunk,
    Checksum,
    CompleteUpload,
    CreateUpload,
    GetUploadStatus,
    OpenUpload,
    PublishPackage,
    UploadPolicy,
    UploadStatus,
)
from orbsurv.application.packages.versions import MAX_TEXT
from orbsurv.application.packages.versions import NAME as PACKAGE_NAME
from orbsurv.application.ports import ObjectStorage
from orbsurv.application.slots import UploadGate
from orbsurv.domain.errors import FieldInvalid, Forbidden, InvalidInput
from orbsurv.domain.files import check_media_type
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.packages import UploadResult, UploadState
from orbsurv.domain.pagination import PageRequest

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum,expiration"
OFFSET_MEDIA_TYPES = frozenset({"application/offset+octet-stream", "application/octet-stream"})
UploadId = Annotated[str, Parameter(max_length=64, description="The upload's id")]
TAGS = ["software packages"]

_STATUS_DOC = {
    400: ResponseSpec(None, description="A malformed header (Upload-Offset, Upload-Checksum)"),
    401: ResponseSpec(None, description="Not signed in"),
    404: ResponseSpec(None, description="No such upload (or another user's)"),
}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _tus_headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    """``Tus-Resumable`` on answers to tus clients; refuse other protocol versions (412)."""
    sent = request.headers.get("tus-resumable")
    if sent is None:
        return {}
    if sent.strip() != TUS_VERSION:
        raise HTTPException(
            status_code=412,
            detail=f"This server speaks tus {TUS_VERSION}.",
            headers={"Tus-Version": TUS_VERSION, "Tus-Resumable": TUS_VERSION},
        )
    return {"Tus-Resumable": TUS_VERSION}


def tus_resumable(app: ASGIApp) -> ASGIApp:
    """Route middleware: ``Tus-Resumable: 1.0.0`` on every answer to a tus request (one that
    sent ``Tus-Resumable``), errors included: 400, 404, 409, 413, 460 and the problem answers of
    the gate (tus 1.0, "Tus-Resumable": "MUST be included in every request and response except
    for OPTIONS requests"). It sits outside the exception handlers, so it sees their answers."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not any(
            name == b"tus-resumable" for name, _ in scope["headers"]
        ):
            await app(scope, receive, send)
            return

        async def send_resumable(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"tus-resumable" for name, _ in headers):
                    headers.append((b"tus-resumable", TUS_VERSION.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_resumable)

    return middleware


def _int_header(request: Request[Any, Any, Any], *names: str) -> int | None:
    """The first of ``names`` present, as a non-negative integer of at most 19 ASCII digits
    (``Upload-Offset`` and ``Upload-Length`` are ``1*DIGIT``, tus 1.0). Raises ``InvalidInput``
    (400 ``bad_header``) otherwise: ``str.isdigit`` alone accepts ``²`` (a latin-1 header
    byte), which ``int`` refuses."""
    for name in names:
        raw = request.headers.get(name)
        if raw is None:
            continue
        value = raw.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise InvalidInput(f"{name} must be a non-negative integer.", code="bad_header")
        return int(value)
    return None


# --- the declared fields' rules, as the schema states them ---------------------------------

NAME_RULE = (
    "1 to 128 characters: ASCII letters, digits, '.', '_' or '-', starting with a letter or "
    "digit. Unique per owner whatever its case: `CasePkg` beside `casepkg` is 409 "
    "`package_name_taken`."
)
# SemVer 2.0.0's own regular expression (semver.org, "Is there a suggested regular expression").
# (``[0-9]`` for its ``\d``: Python's ``\d`` also takes other scripts' digits, ECMA-262's does not.)
SEMVER_PATTERN = exact(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SHA256_PATTERN = exact(r"^$|^[0-9A-Fa-f]{64}$")
NAME_PATTERN = exact(PACKAGE_NAME.pattern)
PackageName = Annotated[
    str,
    msgspec.Meta(
        pattern=NAME_PATTERN,
        min_length=1,
        max_length=128,
        description=NAME_RULE,
        examples=["orbit-cli"],
    ),
]
Version = Annotated[
    str,
    msgspec.Meta(
        max_length=128,
        pattern=SEMVER_PATTERN,
        description="A semantic version (SemVer 2.0.0), such as 1.2.3 or 2.0.0-rc.1+build.5",
        examples=["1.0.0"],
    ),
]
FileName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=4096,
        description="The file's name; path parts are dropped, and what is left must be 1 to "
        "255 characters other than only dots",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=MAX_TEXT["description"])]
Category = Annotated[str, msgspec.Meta(max_length=MAX_TEXT["category"])]
Language = Annotated[str, msgspec.Meta(max_length=MAX_TEXT["language"])]
ContentType = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_TEXT["content_type"],
        description="A media type (RFC 9110 section 8.3.1), such as application/gzip",
    ),
]
Sha256 = Annotated[
    str,
    msgspec.Meta(
        pattern=SHA256_PATTERN, description="The file's SHA-256 in hex, verified at completion"
    ),
]


def _multipart_rules() -> dict[str, dict[str, Any]]:
    """The text fields of ``POST /software-packages`` with the rules the JSON ones carry."""
    return {
        "name": {
            "type": "string",
            "pattern": NAME_PATTERN,
            "minLength": 1,
            "maxLength": 128,
            "description": NAME_RULE,
        },
        "version": {
            "type": "string",
            "maxLength": 128,
            "pattern": SEMVER_PATTERN,
            "examples": ["1.0.0"],
        },
        "description": {"type": "string", "maxLength": MAX_TEXT["description"]},
        "category": {"type": "string", "maxLength": MAX_TEXT["category"]},
        "language": {"type": "string", "maxLength": MAX_TEXT["language"]},
        "is_public": {"type": "boolean", "default": False},
        "sha256": {"type": "string", "pattern": SHA256_PATTERN, "description": "hex; verified"},
    }


# --- ours: init ----------------------------------------------------------------------------


class InitUpload(msgspec.Struct, frozen=True, kw_only=True):
    package_name: PackageName
    version: Version
    file_name: FileName
    size: Annotated[int, msgspec.Meta(ge=1, description="The file's size in bytes")]
    description: Description = ""
    category: Category | None = None
    language: Language | None = None
    content_type: ContentType | None = None
    sha256: Sha256 | None = None
    is_public: bool = False


class InitUploadOut(msgspec.Struct, frozen=True):
    upload_id: str
    offset: int
    size: int
    chunk_size: int
    expires_at: datetime


class AppendOut(msgspec.Struct, frozen=True, omit_defaults=True):
    upload_id: str
    offset: int
    status: str
    package_id: str | None = None
    version_id: str | None = None


class UploadStatusOut(msgspec.Struct, frozen=True):
    upload_id: str
    offset: int
    size: int
    status: str
    expires_at: datetime
    package_name: str
    version: str
    file_name: str
    package_id: str | None = None
    version_id: str | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, status: UploadStatus) -> UploadStatusOut:
        result = status.result
        return cls(
            upload_id=status.upload_id,
            offset=status.offset,
            size=status.size,
            status=status.state.value,
            expires_at=status.expires_at,
            package_name=status.details.package_name,
            version=status.details.version,
            file_name=status.details.file_name,
            package_id=result.package_id if result else None,
            version_id=result.version_id if result else None,
            sha256=result.sha256 if result else None,
        )


class CompleteOut(msgspec.Struct, frozen=True):
    package_id: str
    version_id: str
    sha256: str
    size: int


def _details(data: InitUpload) -> UploadDetails:
    return UploadDetails(
        package_name=data.package_name,
        version=data.version,
        file_name=data.file_name,
        description=data.description,
        category=data.category,
        language=data.language,
        is_public=data.is_public,
        content_type=data.content_type,
        sha256=data.sha256,
    )


@post(
    "/software-packages/uploads/init",
    tags=TAGS,
    summary="Open a resumable upload of one package version",
    description=(
        "Declares the version (SemVer), the file and its size in bytes (and optionally its "
        "SHA-256, verified at completion). Answers the upload's id, the preferred chunk size "
        "and when the session expires; `Location` names the upload. Then PATCH the bytes and "
        "POST /complete. 409 `version_exists` when the version is already published, "
        "`too_many_versions` when the package holds `PACKAGE_MAX_VERSIONS` versions, "
        "`package_name_taken` for a case variant of one of your package names (`casepkg` "
        "beside `CasePkg`), "
        "`too_many_open_uploads` with `UPLOAD_MAX_OPEN_SESSIONS` open already; 413 past "
        "`MAX_UPLOAD_BYTES`; 429 `rate_limited` (with `Retry-After`) past "
        "`PACKAGE_PUBLISHES_PER_HOUR` uploads opened and single-request publications of yours "
        "within the hour. The published version is audited."
    ),
    status_code=201,
    security=SECURITY,
    responses={
        409: ResponseSpec(
            None,
            description="version_exists, too_many_versions (the package holds "
            "PACKAGE_MAX_VERSIONS), package_name_taken (a case variant of one of your package "
            "names), or too_many_open_uploads",
        ),
        413: ResponseSpec(None, description="Larger than MAX_UPLOAD_BYTES"),
        429: ResponseSpec(None, description="rate_limited: PACKAGE_PUBLISHES_PER_HOUR reached"),
    },
)
@inject
async def init_upload(
    request: Request[Any, Any, Any], data: JSONBody[InitUpload], use_case: FromDishka[CreateUpload]
) -> Response[InitUploadOut]:
    principal = await current_principal(request)
    opened = await use_case(principal, OpenUpload(details=_details(data), size=data.size))
    location = request.url.path.rsplit("/", 1)[0] + f"/{opened.upload_id}"
    return Response(
        InitUploadOut(
            upload_id=opened.upload_id,
            offset=opened.offset,
            size=opened.size,
            chunk_size=opened.chunk_size,
            expires_at=opened.expires_at,
        ),
        status_code=201,
        headers={"Location": location, "Cache-Control": "no-store"},
    )


# --- tus: discovery and creation -----------------------------------------------------------


@route(
    "/software-packages/uploads",
    http_method=[HttpMethod.OPTIONS],
    tags=TAGS,
    summary="tus discovery: protocol version, extensions, limits",
    description=(
        "tus 1.0 OPTIONS: `Tus-Resumable`, `Tus-Version`, `Tus-Extension` (creation, "
        "termination, checksum, expiration), `Tus-Max-Size` (bytes) and "
        "`Tus-Checksum-Algorithm`. No sign-in needed."
    ),
    status_code=204,
    include_in_schema=False,  # protocol discovery for tus clients; described on POST /uploads
)
async def tus_options(request: Request[Any, Any, Any]) -> Response[None]:
    policy: UploadPolicy = request.app.state.upload_policy
    return Response(
        None,
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(policy.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (tus 1.0, creation).

    Raises ``InvalidInput`` for a value that is not base64 of UTF-8 text, and for a key given
    twice (tus 1.0: "All keys MUST be unique"; which one would win is the client's guess)."""
    found: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        if key in found:
            raise InvalidInput(
                f"Upload-Metadata: the key {key!r} is given more than once.", code="bad_metadata"
            )
        try:
            found[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text.",
                code="bad_metadata",
            ) from None
    return found


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@post(
    "/software-packages/uploads",
    middleware=[tus_resumable],
    tags=TAGS,
    summary="tus creation: open an upload",
    description=(
        "tus 1.0 creation extension. Headers: `Tus-Resumable: 1.0.0`, `Upload-Length` (bytes), "
        "`Upload-Metadata` with base64 values for `package_name`, `version`, `filename`, and "
        "optionally `filetype`, `description`, `category`, `language`, `is_public`, `sha256`. "
        "Answers 201 with `Location` and `Upload-Expires`. The upload completes (the version is "
        "published) when its last byte arrives. 409 `version_exists`, `too_many_versions` "
        "(`PACKAGE_MAX_VERSIONS`), or `too_many_open_uploads` with `UPLOAD_MAX_OPEN_SESSIONS` "
        "open already; 429 `rate_limited` past `PACKAGE_PUBLISHES_PER_HOUR`."
    ),
    status_code=201,
    security=SECURITY,
    request_max_body_size=None,
    responses={
        400: ResponseSpec(None, description="Missing or malformed Upload-Length/Metadata"),
        409: ResponseSpec(
            None,
            description="version_exists, too_many_versions (the package holds "
            "PACKAGE_MAX_VERSIONS), package_name_taken (a case variant of one of your package "
            "names), or too_many_open_uploads",
        ),
        412: ResponseSpec(None, description="Unsupported Tus-Resumable"),
        413: ResponseSpec(None, description="Larger than Tus-Max-Size"),
        429: ResponseSpec(None, description="rate_limited: PACKAGE_PUBLISHES_PER_HOUR reached"),
    },
)
@inject
async def tus_create(
    request: Request[Any, Any, Any], use_case: FromDishka[CreateUpload]
) -> Response[bytes]:
    headers = _tus_headers(request)
    principal = await current_principal(request)
    length = _int_header(request, "upload-length")
    if length is None:
        raise InvalidInput(
            "Upload-Length is required (deferred lengths are not supported).",
            code="upload_length_required",
        )
    meta = parse_metadata(request.headers.get("upload-metadata", ""))
    for key, field in (("package_name", "package_name"), ("version", "version")):
        if not meta.get(key):
            raise FieldInvalid(field, f"is required in Upload-Metadata ({key})")
    for key in ("filetype", "content_type"):  # named as the client sent it
        if (declared := meta.get(key, "").strip()) != "":
            check_media_type(declared, key)
    details = UploadDetails(
        package_name=meta["package_name"],
        version=meta["version"],
        file_name=meta.get("filename") or meta.get("file_name") or meta["package_name"],
        description=meta.get("description", ""),
        category=meta.get("category"),
        language=meta.get("language"),
        is_public=_truthy(meta.get("is_public")),
        content_type=meta.get("filetype") or meta.get("content_type"),
        sha256=meta.get("sha256"),
    )
    # errors name the Upload-Metadata key the client sent
    names = {
        "file_name": "filename" if meta.get("filename") else "file_name",
        "content_type": "filetype" if meta.get("filetype") else "content_type",
    }
    with form_names(names):
        opened = await use_case(principal, OpenUpload(details=details, size=length, protocol="tus"))
    return Response(
        b"",  # tus answers creation with headers only (a JSON null is not "no body")
        media_type=MediaType.TEXT,
        status_code=201,
        headers={
            **headers,
            "Location": f"{request.url.path.rstrip('/')}/{opened.upload_id}",
            "Upload-Expires": _http_date(opened.expires_at),
            "Upload-Offset": "0",
        },
    )


# --- one upload: HEAD, PATCH, DELETE, complete --------------------------------------------


@head(
    "/software-packages/uploads/{upload_id:str}",
    middleware=[tus_resumable],
    tags=TAGS,
    summary="The upload's offset (tus HEAD)",
    description=(
        "`Upload-Offset`: bytes durably stored; `Upload-Length`; `Upload-Expires`; "
        "`Cache-Control: no-store`. Resume a PATCH from `Upload-Offset`. `Upload-Offset` equals "
        "`Upload-Length` only once the version is published: while the publication that the "
        "last byte starts is pending (a scanner or storage that failed), it is one byte short, "
        "and a PATCH of that byte (or an empty PATCH at the length) publishes, answering 503 "
        "with `Retry-After` while the dependency is still down. 404 for an unknown or aborted "
        "upload, 410 once expired."
    ),
    security=SECURITY,
    responses={**_STATUS_DOC, 410: ResponseSpec(None, description="The upload expired")},
)
@inject
async def upload_head(
    request: Request[Any, Any, Any], upload_id: UploadId, use_case: FromDishka[GetUploadStatus]
) -> Response[None]:
    headers = _tus_headers(request)
    status = await use_case(await current_principal(request), upload_id)
    if status.state is UploadState.EXPIRED:
        return headers_only(410, {**headers, "Cache-Control": "no-store"})
    if status.state is UploadState.ABORTED:
        return headers_only(404, {**headers, "Cache-Control": "no-store"})
    return headers_only(
        200,
        {
            **headers,
            "Upload-Offset": str(status.resume_offset),
            "Upload-Length": str(status.size),
            "Upload-Expires": _http_date(status.expires_at),
            "Cache-Control": "no-store",
        },
    )


@route(
    "/software-packages/uploads/{upload_id:str}",
    http_method=[HttpMethod.GET],
    tags=TAGS,
    summary="The upload's status as JSON",
    description="Offset, size, state and, once completed, the package and version created.",
    security=SECURITY,
    responses=_STATUS_DOC,
)
@inject
async def upload_status(
    request: Request[Any, Any, Any], upload_id: UploadId, use_case: FromDishka[GetUploadStatus]
) -> Response[UploadStatusOut]:
    status = await use_case(await current_principal(request), upload_id)
    return Response(UploadStatusOut.of(status), headers={"Cache-Control": "no-store"})


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


@route(
    "/software-packages/uploads/{upload_id:str}",
    middleware=[tus_resumable],
    http_method=[HttpMethod.PATCH],
    tags=TAGS,
    summary="Append bytes at Upload-Offset (tus PATCH)",
    description=(
        "Raw body (`application/offset+octet-stream` or `application/octet-stream`), header "
        "`Upload-Offset` (alias `X-Upload-Offset`) equal to the upload's offset, optional "
        "`Upload-Checksum: sha256 <base64>` (also sha1, md5). Answers 200 `{upload_id, offset, "
        "status}` (204 to tus clients) with `Upload-Offset` and, while the upload is open, "
        "`Upload-Expires`. 409 with the current offset on a "
        "mismatch; 413 past the declared size; 423 while another request writes to the upload; "
        "460 on a checksum mismatch (offset unchanged). A body cut short keeps the bytes that "
        "were stored: HEAD tells where to resume. A tus upload publishes its version with its "
        "last byte; when that fails for a dependency (503 `scanner_unavailable` or "
        "`storage_unavailable`, with `Retry-After`) every byte stays stored, HEAD tells one "
        "byte short, and a PATCH of the last byte again (or an empty one at the length) "
        "publishes. A client silent for "
        "`UPLOAD_IDLE_TIMEOUT_SECONDS` (or a body longer than `UPLOAD_BODY_MAX_SECONDS`) is "
        "dropped with its stored bytes kept. 429 `too_many_uploads` while "
        "`UPLOAD_MAX_CONCURRENT_PER_USER` bodies of the user stream already."
    ),
    security=SECURITY,
    request_max_body_size=None,
    opt=documented(
        content={
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in ("application/offset+octet-stream", "application/octet-stream")
        },
        responses={200: AppendOut},
        problems={460: "checksum_mismatch: Upload-Checksum does not match the body"},
        headers={
            "Upload-Offset": {
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
                "description": (
                    "Where these bytes start: the upload's current offset (HEAD tells it). "
                    "`X-Upload-Offset` is read when it is absent; without either, 400 "
                    "`upload_offset_required`."
                ),
            },
            "Upload-Checksum": {
                "schema": {"type": "string"},
                "description": (
                    "`<algorithm> <base64 digest>` of this request's body, algorithm `sha256`, "
                    "`sha1` or `md5` (tus checksum extension); a mismatch is 460 and the bytes "
                    "are not kept."
                ),
            },
        },
    ),
    responses={
        **_STATUS_DOC,
        204: ResponseSpec(None, description="To tus clients (`Tus-Resumable` sent): no body"),
        409: ResponseSpec(None, description="Offset mismatch (the body has `offset`)"),
        410: ResponseSpec(None, description="The upload expired"),
        413: ResponseSpec(None, description="Past the declared size"),
        415: ResponseSpec(None, description="Wrong Content-Type"),
        423: ResponseSpec(None, description="Another request is writing to this upload"),
        429: ResponseSpec(None, description="too_many_uploads: too many bodies streaming"),
    },
)
@inject_app
async def upload_patch(
    request: Request[Any, Any, Any],
    upload_id: UploadId,
    use_case: FromDishka[AppendUploadChunk],
    gate: FromDishka[UploadGate],
) -> Response[Any]:
    headers = _tus_headers(request)
    principal = await current_principal(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in OFFSET_MEDIA_TYPES:
        raise HTTPException(
            status_code=415,
            detail="Send the bytes as application/offset+octet-stream.",
            headers=headers,
        )
    offset = _int_header(request, "upload-offset", "x-upload-offset")
    if offset is None:
        raise InvalidInput("Upload-Offset is required.", code="upload_offset_required")
    checksum_header = request.headers.get("upload-checksum")
    checksum = Checksum.parse(checksum_header) if checksum_header else None
    async with gate.hold(principal.user_id):
        appended = await use_case(
            principal,
            AppendChunk(
                upload_id=upload_id,
                offset=offset,
                body=_body(request),
                content_length=_int_header(request, "content-length"),
                checksum=checksum,
                context=request_context(request),
            ),
        )
    answer = {**headers, "Upload-Offset": str(appended.offset), "Cache-Control": "no-store"}
    if appended.expires_at is not None:  # tus expiration: on every PATCH answer of an open upload
        answer["Upload-Expires"] = _http_date(appended.expires_at)
    if appended.result is not None:
        answer["X-Package-Id"] = appended.result.package_id
        answer["X-Version-Id"] = appended.result.version_id
    if headers:
        return Response(None, status_code=204, headers=answer)
    return Response(
        AppendOut(
            upload_id=appended.upload_id,
            offset=appended.offset,
            status=appended.state.value,
            package_id=appended.result.package_id if appended.result else None,
            version_id=appended.result.version_id if appended.result else None,
        ),
        status_code=200,
        headers=answer,
    )


@delete(
    "/software-packages/uploads/{upload_id:str}",
    middleware=[tus_resumable],
    tags=TAGS,
    summary="Abort an upload (tus termination)",
    description=(
        "Removes the session, its stored bytes and multipart parts. 409 `upload_closed` once "
        "completed: the version is published, and versions are not deleted one by one; "
        "`DELETE /software-packages/{id}` deletes the package with its versions."
    ),
    status_code=204,
    security=SECURITY,
    responses={
        **_STATUS_DOC,
        409: ResponseSpec(None, description="upload_closed: already completed"),
    },
)
@inject
async def upload_delete(
    request: Request[Any, Any, Any], upload_id: UploadId, use_case: FromDishka[AbortUpload]
) -> Response[None]:
    headers = _tus_headers(request)
    await use_case(await current_principal(request), upload_id)
    return Response(None, status_code=204, headers=headers)


@post(
    "/software-packages/uploads/{upload_id:str}/complete",
    tags=TAGS,
    summary="Complete an upload: verify, scan, publish the version",
    description=(
        "Checks that every declared byte arrived and the SHA-256 matches the declared one, "
        "scans the file, and publishes the version. Idempotent: a retry answers the same "
        "result. 409 `upload_incomplete`, `sha256_mismatch`, `version_exists` or "
        "`too_many_versions` (the package reached `PACKAGE_MAX_VERSIONS` meanwhile; the upload "
        "is discarded); 422 `malware_detected`; 423 while a PATCH is running. The publication "
        "is audited (`package.version_published`, and `package.created` for a new package)."
    ),
    status_code=200,
    security=SECURITY,
    responses={
        **_STATUS_DOC,
        409: ResponseSpec(
            None, description="Incomplete, digest mismatch, version exists or package full"
        ),
        410: ResponseSpec(None, description="The upload expired"),
        423: ResponseSpec(None, description="A PATCH is running"),
    },
)
@inject
async def upload_complete(
    request: Request[Any, Any, Any], upload_id: UploadId, use_case: FromDishka[CompleteUpload]
) -> CompleteOut:
    result = await use_case(await current_principal(request), upload_id, request_context(request))
    return CompleteOut(
        package_id=result.package_id,
        version_id=result.version_id,
        sha256=result.sha256,
        size=result.size,
    )


UPLOAD_ROUTES = [
    init_upload,
    tus_options,
    tus_create,
    upload_head,
    upload_status,
    upload_patch,
    upload_delete,
    upload_complete,
]


# --- the catalogue -------------------------------------------------------------------------

READERS = {"operator": Provide(requires(Permission.READ_CONSOLE))}
Operator = NamedDependency[Principal]
Paging = NamedDependency[PageRequest]
PackageId = Annotated[str, Parameter(max_length=64, description="The package's id")]
Filter = Annotated[str | None, Parameter(max_length=200)]
CategoryFilter = Annotated[
    str | None, Parameter(max_length=MAX_TEXT["category"], description="Only this category")
]
LanguageFilter = Annotated[
    str | None, Parameter(max_length=MAX_TEXT["language"], description="Only this language")
]


class PackageOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    description: str
    category: str | None
    language: str | None
    is_public: bool
    owner_id: str
    versions: int
    downloads: int
    size: int
    latest_version: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, package: PackageView, latest_version: str | None) -> PackageOut:
        return cls(
            id=package.id,
            name=package.name,
            description=package.description,
            category=package.category,
            language=package.language,
            is_public=package.is_public,
            owner_id=package.owner_id,
            versions=package.versions,
            downloads=package.downloads,
            size=package.size,
            latest_version=latest_version,
            created_at=package.created_at,
            updated_at=package.updated_at,
        )


class PackagePage(msgspec.Struct, frozen=True):
    items: list[PackageOut]
    total: int
    page: int
    page_size: int
    pages: int


class VersionOut(msgspec.Struct, frozen=True):
    id: str
    version: str
    file_name: str
    content_type: str | None
    size: int
    sha256: str
    downloads: int
    created_at: datetime
    latest: bool


class VersionsOut(msgspec.Struct, frozen=True):
    """A page of versions. ``package_id``, ``latest`` and ``items`` are the keys the answer had
    before it was paged; the paging keys are the contract's list shape."""

    package_id: str
    latest: str | None
    items: list[VersionOut]
    total: int
    page: int
    page_size: int
    pages: int


class PackageUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    description: Description | None = None
    category: Category | None = None
    language: Language | None = None
    is_public: bool | None = None


class AdminPackageOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    owner_id: str
    owner_email: str | None
    is_public: bool
    versions: int
    downloads: int
    size: int
    created_at: datetime


class AdminPackagePage(msgspec.Struct, frozen=True):
    items: list[AdminPackageOut]
    total: int
    page: int
    page_size: int
    pages: int


class CountOut(msgspec.Struct, frozen=True):
    name: str
    count: int


class PackagesSummaryOut(msgspec.Struct, frozen=True):
    total_packages: int
    total_versions: int
    total_bytes: int
    total_downloads: int
    top_languages: list[CountOut]
    top_categories: list[CountOut]


@get(
    "/software-packages",
    tags=TAGS,
    summary="Public packages and your own",
    description="Newest first; `q` searches name and description; `category`, `language` filter.",
    security=SECURITY,
)
@inject
async def list_packages(
    request: Request[Any, Any, Any],
    paging: Paging,
    use_case: FromDishka[ListPackages],
    q: Filter = None,
    category: CategoryFilter = None,
    language: LanguageFilter = None,
) -> PackagePage:
    found = await use_case(
        await current_principal(request), paging, q=q, category=category, language=language
    )
    return PackagePage(
        items=[PackageOut.of(item.package, item.latest_version) for item in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


@get(
    "/software-packages/{package_id:str}/versions",
    tags=TAGS,
    summary="A package's versions",
    description=(
        "Paginated like every list: `page` (from 1) and `page_size` (alias `limit`, 1..100, "
        "default 20) → `{package_id, latest, items, total, page, page_size, pages}`, newest "
        "first with a tie-break on id. `latest` is the highest SemVer precedence among all the "
        "package's versions (not the page's, not the last upload); an item's `latest` is true "
        "for that version, on whichever page it is."
    ),
    security=SECURITY,
    responses={404: ResponseSpec(None, description="No such package (or not visible)")},
)
@inject
async def list_versions(
    request: Request[Any, Any, Any],
    package_id: PackageId,
    paging: Paging,
    use_case: FromDishka[ListVersions],
) -> VersionsOut:
    listing = await use_case(await current_principal(request), package_id, paging)
    latest_id, latest = listing.latest if listing.latest else (None, None)
    found = listing.versions
    return VersionsOut(
        package_id=package_id,
        latest=latest,
        items=[
            VersionOut(
                id=v.id,
                version=v.version,
                file_name=v.file_name,
                content_type=v.content_type,
                size=v.size,
                sha256=v.sha256,
                downloads=v.downloads,
                created_at=v.created_at,
                latest=v.id == latest_id,
            )
            for v in found.items
        ],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


def _latest(listing: VersionListing) -> str | None:
    return listing.latest[1] if listing.latest else None


@get(
    "/software-packages/{package_id:str}",
    tags=TAGS,
    summary="One package",
    description="The same fields as an item of the list, `latest_version` included.",
    security=SECURITY,
    responses={404: ResponseSpec(None, description="No such package (or not visible)")},
)
@inject
async def get_package(
    request: Request[Any, Any, Any], package_id: PackageId, versions: FromDishka[ListVersions]
) -> PackageOut:
    listing = await versions(await current_principal(request), package_id, PageRequest(1, 1))
    return PackageOut.of(listing.package, _latest(listing))


@route(
    "/software-packages/{package_id:str}",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT],
    tags=TAGS,
    summary="Edit a package's metadata (owner)",
    description=(
        "Description, category, language, visibility: the only way metadata changes (uploads "
        "never change it). Unknown fields are a 422. Audited as `package.updated` (the fields "
        "changed, the visibility before and after)."
    ),
    security=SECURITY,
    responses={
        403: ResponseSpec(None, description="Not the owner"),
        404: ResponseSpec(None, description="No such package (or not visible)"),
    },
)
@inject
async def update_package(
    request: Request[Any, Any, Any],
    package_id: PackageId,
    data: JSONBody[PackageUpdate],
    use_case: FromDishka[UpdatePackage],
    versions: FromDishka[ListVersions],
) -> PackageOut:
    principal = await current_principal(request)
    package = await use_case(
        principal,
        package_id,
        PackageChanges(
            description=data.description,
            category=data.category,
            language=data.language,
            is_public=data.is_public,
        ),
        request_context(request),
    )
    listing = await versions(principal, package_id, PageRequest(1, 1))
    return PackageOut.of(package, _latest(listing))


@delete(
    "/software-packages/{package_id:str}",
    tags=TAGS,
    summary="Delete a package with its versions (owner, or a dev session)",
    description=(
        "Your own package, or (a console write) anyone's from a dev session: the dev role "
        "signed in with a one-time code. Bytes no other version references are deleted from "
        "storage too. Audited as `package.deleted`; a refusal (403 `dev_session_required` for "
        "a dev without the code, `forbidden` otherwise, admins included) is audited as "
        "`access.denied`. Another user's private package is 404 to whoever may not see it."
    ),
    status_code=204,
    security=SECURITY,
    responses={
        403: ResponseSpec(
            None, description="Neither the owner nor a dev session (`dev_session_required`)"
        ),
        404: ResponseSpec(None, description="No such package (or not visible)"),
    },
)
@inject
async def delete_package(
    request: Request[Any, Any, Any], package_id: PackageId, use_case: FromDishka[DeletePackage]
) -> None:
    principal = await current_principal(request)
    try:
        await use_case(principal, package_id, request_context(request))
    except Forbidden:
        await record_denial(request, principal)
        raise


@get(
    "/software-packages/admin/summary",
    tags=TAGS,
    summary="Package totals (admin)",
    description="Packages, versions, bytes, downloads, top languages and categories.",
    dependencies=READERS,
    security=SECURITY,
)
@inject
async def admin_summary(
    operator: Operator, use_case: FromDishka[SummarisePackages]
) -> PackagesSummaryOut:
    summary = await use_case()
    return PackagesSummaryOut(
        total_packages=summary.packages,
        total_versions=summary.versions,
        total_bytes=summary.bytes,
        total_downloads=summary.downloads,
        top_languages=[CountOut(name, n) for name, n in summary.top_languages],
        top_categories=[CountOut(name, n) for name, n in summary.top_categories],
    )


@get(
    "/software-packages/admin/packages",
    tags=TAGS,
    summary="Every package with its owner (admin)",
    description="Paginated, newest first; `q`, `category`, `language` filter.",
    dependencies=READERS,
    security=SECURITY,
)
@inject
async def admin_packages(
    operator: Operator,
    paging: Paging,
    use_case: FromDishka[ListPackages],
    q: Filter = None,
    category: CategoryFilter = None,
    language: LanguageFilter = None,
) -> AdminPackagePage:
    found = await use_case(operator, paging, q=q, category=category, language=language, every=True)
    return AdminPackagePage(
        items=[
            AdminPackageOut(
                id=p.package.id,
                name=p.package.name,
                owner_id=p.package.owner_id,
                owner_email=p.package.owner_email,
                is_public=p.package.is_public,
                versions=p.package.versions,
                downloads=p.package.downloads,
                size=p.package.size,
                created_at=p.package.created_at,
            )
            for p in found.items
        ],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


@route(
    "/software-packages/{package_id:str}/versions/{version_id:str}/download",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=TAGS,
    summary="Download one version",
    description=DOWNLOAD_DESCRIPTION + " Owners and admins may download private packages.",
    security=SECURITY,
    media_type="application/octet-stream",
    responses={
        206: ResponseSpec(
            data_container=bytes, description="One range of the file.", generate_examples=False
        ),
        304: ResponseSpec(data_container=None, description="The ETag matched If-None-Match."),
        404: ResponseSpec(
            None,
            description=(
                "No such package or version (or not visible); `object_missing` when its "
                "stored file is lost"
            ),
        ),
        416: ResponseSpec(None, description="Content-Range: bytes */size"),
        503: ResponseSpec(None, description="storage_unavailable (Retry-After)"),
    },
)
@inject
async def download_version(
    request: Request[Any, Any, Any],
    package_id: PackageId,
    version_id: Annotated[str, Parameter(max_length=64)],
    find: FromDishka[FindVersion],
    count: FromDishka[CountPackageDownload],
    storage: FromDishka[ObjectStorage],
) -> Response[Any]:
    _, version = await find(await current_principal(request), package_id, version_id)
    item = Downloadable(
        key=version.storage_key,
        size=version.size,
        sha256=version.sha256,
        modified_at=version.created_at,
        file_name=version.file_name,
    )
    return await download_response(request, storage, item, on_complete=lambda: count(version.id))


SINGLE_FIELDS = ("name", "description", "category", "language", "version", "is_public", "sha256")
# The use case's names for what the form calls otherwise: its errors name the form's fields.
MULTIPART_NAMES = {"package_name": "name", "file_name": "file", "content_type": "file"}


@post(
    "/software-packages",
    tags=TAGS,
    summary="Publish a package version in one request",
    description=(
        "multipart/form-data with the fields `name`, `version` (SemVer), and optionally "
        "`description`, `category`, `language`, `is_public` (true/false), `sha256`, and one "
        "`file` part; the text fields may come in any order, before or after the file (each "
        "at most 64 KiB, 16 parts in all). The file streams to storage while it is hashed and "
        "scanned; `MAX_UPLOAD_BYTES` applies as bytes arrive. A new name creates the package "
        "with these fields; an existing one of yours gets the version (its metadata stays). "
        "Answers 201 `{package_id, version_id, sha256, size}`. A body silent for "
        "`UPLOAD_IDLE_TIMEOUT_SECONDS` or longer than `UPLOAD_BODY_MAX_SECONDS` is 408 "
        "`request_timeout` and keeps nothing; 429 `too_many_uploads` while "
        "`UPLOAD_MAX_CONCURRENT_PER_USER` bodies of the user stream already, `rate_limited` "
        "(with `Retry-After`) past `PACKAGE_PUBLISHES_PER_HOUR` publications of yours within "
        "the hour; 409 `too_many_versions` when the package holds `PACKAGE_MAX_VERSIONS`. "
        "Audited like every publication."
    ),
    status_code=201,
    security=SECURITY,
    request_max_body_size=None,
    opt=documented(
        content=multipart_upload(
            _multipart_rules(),
            required=["name", "version"],
        )
    ),
    responses={
        400: ResponseSpec(None, description="Malformed multipart body"),
        408: ResponseSpec(None, description="request_timeout: the body stalled"),
        409: ResponseSpec(
            None,
            description="version_exists, too_many_versions, package_name_taken (a case variant "
            "of one of your package names), or the SHA-256 differs",
        ),
        413: ResponseSpec(None, description="Past MAX_UPLOAD_BYTES"),
        415: ResponseSpec(None, description="Not multipart/form-data"),
        429: ResponseSpec(
            None,
            description="too_many_uploads (bodies streaming) or rate_limited (publications)",
        ),
    },
)
@inject_app
async def publish_package(
    request: Request[Any, Any, Any],
    use_case: FromDishka[PublishPackage],
    gate: FromDishka[UploadGate],
) -> Response[CompleteOut]:
    principal = await current_principal(request)
    boundary = _boundary(request)
    async with gate.hold(principal.user_id):
        result = await _publish(request, principal, boundary, use_case)
    return Response(
        CompleteOut(
            package_id=result.package_id,
            version_id=result.version_id,
            sha256=result.sha256,
            size=result.size,
        ),
        status_code=201,
    )


async def _publish(
    request: Request[Any, Any, Any], principal: Principal, boundary: str, use_case: PublishPackage
) -> UploadResult:
    form = _Form(request, boundary)
    part = await form.until_file(SINGLE_FIELDS)
    file_name, file_type = part.filename or "", part.content_type

    def details(*, whole: bool = True) -> UploadDetails:
        """The declaration the fields read so far make (those after the file included, once
        its bytes were read). ``whole``: raises ``FieldInvalid`` for a missing name or
        version; otherwise they are ``""`` until they come."""
        fields = form.fields
        for required in ("name", "version"):
            if whole and not fields.get(required, "").strip():
                raise FieldInvalid(required, "is required")
        return UploadDetails(
            package_name=fields.get("name", ""),
            version=fields.get("version", ""),
            file_name=file_name,
            description=fields.get("description", ""),
            category=fields.get("category"),
            language=fields.get("language"),
            is_public=bool(_flag(fields.get("is_public"), "is_public")),
            content_type=file_type,
            sha256=fields.get("sha256"),
        )

    with form_names(MULTIPART_NAMES):
        before = details(whole=False)
        return await use_case(
            principal, before, form.file_body(), request_context(request), complete=details
        )


CATALOGUE_ROUTES = [
    publish_package,
    list_packages,
    get_package,
    list_versions,
    download_version,
    update_package,
    delete_package,
    admin_summary,
    admin_packages,
]
