"""The operator console (``/admin``): admin and dev read; the routes marked dev need a dev
session opened with a one-time code. A dev signed in without it is a plain user here: every
console route, read or write, answers 403 ``dev_session_required``. Lists never carry password
hashes, tokens or OTP secrets."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import MediaType, Request, Response, delete, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIType, Schema
from litestar.params import JSONBody, Parameter
from litestar.response import Stream

from orbsurv.adapters.http.auth import SECURITY, requires
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import inject
from orbsurv.adapters.http.inputs import in_utc
from orbsurv.adapters.http.openapi import documented
from orbsurv.adapters.http.pagination import KEYSET_PAGING, encode_cursor, provide_cursor
from orbsurv.adapters.http.schemas import Email, Instant, UserOut, request_email
from orbsurv.adapters.validation import checked_header_text
from orbsurv.application.console.operate import (
    AcknowledgeAlert,
    ManageUser,
    OperatorEmail,
    SendOperatorEmail,
    UserChange,
)
from orbsurv.application.console.ports import AuditFilter, ConsoleViews, SubmissionExport
from orbsurv.application.leads.ports import ConsentViews, SubmissionViews
from orbsurv.domain.errors import FieldInvalid, NotFound
from orbsurv.domain.identity import Permission, Principal, Role, User
from orbsurv.domain.pagination import CursorPage, PageRequest

READERS = {"operator": Provide(requires(Permission.READ_CONSOLE))}
DEVS = {"operator": Provide(requires(Permission.ADMINISTER))}
# Streams page by keyset only: `page` beyond the first is refused and points to `cursor`.
STREAM_READERS = {**READERS, **KEYSET_PAGING}
Operator = NamedDependency[Principal]
Paging = NamedDependency[PageRequest]
Id = Annotated[str, Parameter(max_length=64)]
SUBMISSIONS = {
    "waitlist": "waitlist",
    "contacts": "contact",
    "pilot-requests": "pilot_request",
    "investor-interest": "investor_interest",
    "client-errors": "client_errors",
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV = "text/csv"  # Litestar adds "; charset=utf-8" to text types itself


class AdminSummary(msgspec.Struct, frozen=True):
    total_users: int
    total_waitlist: int
    total_contacts: int
    total_pilot_requests: int
    total_investor_interest: int
    total_client_errors: int
    total_orders: int
    total_projects: int
    total_packages: int
    open_alerts: int


class AdminUser(msgspec.Struct, frozen=True):
    id: str
    email: str
    username: str | None
    name: str | None
    organization: str | None
    role: str
    is_active: bool
    email_verified: bool
    otp_enabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> AdminUser:
        public = msgspec.structs.asdict(UserOut.of(user))
        return cls(**public, is_active=user.is_active, last_login_at=user.last_login_at)


class AdminUserDetail(msgspec.Struct, frozen=True):
    user: AdminUser
    sessions: int
    last_login_at: datetime | None


class UserPage(msgspec.Struct, frozen=True):
    items: list[AdminUser]
    total: int
    page: int
    page_size: int
    pages: int


class StreamPage(msgspec.Struct, frozen=True):
    items: list[dict[str, Any]]
    next_cursor: str | None
    page_size: int


class UserUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Literal["user", "admin", "dev"] | None = None
    is_active: bool | None = None


class SendEmail(msgspec.Struct, kw_only=True):
    to: Email
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class Queued(msgspec.Struct, frozen=True):
    status: str


class EndedSessions(msgspec.Struct, frozen=True):
    sessions_ended: int


def _stream_page(page: CursorPage[dict[str, Any]], size: int) -> StreamPage:
    cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return StreamPage(items=list(page.items), next_cursor=cursor, page_size=size)


@get("/admin/summary", tags=["console"], summary="Totals", dependencies=READERS, security=SECURITY)
@inject
async def summary(operator: Operator, reader: FromDishka[ConsoleViews]) -> AdminSummary:
    totals = await reader.totals()
    return AdminSummary(
        total_users=totals["users"],
        total_waitlist=totals["waitlist"],
        total_contacts=totals["contacts"],
        total_pilot_requests=totals["pilot_requests"],
        total_investor_interest=totals["investor_interest"],
        total_client_errors=totals["client_errors"],
        total_orders=totals["orders"],
        total_projects=totals["projects"],
        total_packages=totals["packages"],
        open_alerts=totals["open_alerts"],
    )


@get(
    ["/admin/users", "/users"],
    tags=["console"],
    summary="Search users",
    dependencies=READERS,
    security=SECURITY,
)
@inject
async def list_users(
    operator: Operator,
    paging: Paging,
    reader: FromDishka[ConsoleViews],
    q: Annotated[str | None, Parameter(max_length=254)] = None,
    role: Annotated[
        Literal["user", "admin", "dev"] | None, Parameter(description="Only this role")
    ] = None,
) -> UserPage:
    found = await reader.users(q.strip() if q else None, Role(role) if role else None, paging)
    return UserPage(
        items=[AdminUser.of(user) for user in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


@get(
    ["/admin/users/{user_id:str}", "/users/{user_id:str}"],
    tags=["console"],
    summary="One user",
    dependencies=READERS,
    security=SECURITY,
)
@inject
async def user_detail(
    operator: Operator, user_id: Id, reader: FromDishka[ConsoleViews]
) -> AdminUserDetail:
    detail = await reader.user(user_id, datetime.now(UTC))
    if detail is None:
        raise NotFound("No such user.", code="user_not_found")
    return AdminUserDetail(
        user=AdminUser.of(detail.user), sessions=detail.sessions, last_login_at=detail.last_login_at
    )


@route(
    "/admin/users/{user_id:str}",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT],
    tags=["console"],
    summary="Change a user's role or state (dev)",
    description=(
        "Ends their sessions and their outstanding mail links at once; audited. 409 "
        "`cannot_modify_self` for your own account (another dev does it), `last_dev` when it "
        "would leave no active dev, `concurrent_update` when the user changed meanwhile."
    ),
    dependencies=DEVS,
    security=SECURITY,
)
@inject
async def change_user(
    request: Request[Any, Any, Any],
    operator: Operator,
    user_id: Id,
    data: JSONBody[UserUpdate],
    use_case: FromDishka[ManageUser],
) -> AdminUser:
    change = UserChange(role=Role(data.role) if data.role else None, is_active=data.is_active)
    return AdminUser.of(await use_case.change(operator, user_id, change, request_context(request)))


@delete(
    "/admin/users/{user_id:str}/sessions",
    tags=["console"],
    summary="End every session of a user (dev)",
    status_code=200,
    dependencies=DEVS,
    security=SECURITY,
)
@inject
async def end_user_sessions(
    request: Request[Any, Any, Any],
    operator: Operator,
    user_id: Id,
    use_case: FromDishka[ManageUser],
) -> EndedSessions:
    return EndedSessions(
        sessions_ended=await use_case.end_sessions(operator, user_id, request_context(request))
    )


@get(
    "/admin/logs",
    tags=["console"],
    summary="The audit trail",
    description="Keyset paging: pass `next_cursor` back as `cursor`.",
    dependencies=STREAM_READERS,
    security=SECURITY,
)
@inject
async def logs(
    operator: Operator,
    paging: Paging,
    reader: FromDishka[ConsoleViews],
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    action: Annotated[str | None, Parameter(max_length=64)] = None,
    actor_id: Annotated[str | None, Parameter(max_length=64)] = None,
    ip: Annotated[str | None, Parameter(max_length=64)] = None,
    since: Annotated[
        Instant | None, Parameter(description="Only events at or after (RFC 3339)")
    ] = None,
    until: Annotated[Instant | None, Parameter(description="Only events before (RFC 3339)")] = None,
) -> StreamPage:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:  # query parameters skip the Meta check
            raise FieldInvalid(name, "needs a UTC offset (like 2026-01-31T12:00:00Z)")
    since = in_utc(since, "since") if since is not None else None
    until = in_utc(until, "until") if until is not None else None
    where = AuditFilter(action=action, actor_user_id=actor_id, ip=ip, since=since, until=until)
    page = await reader.audit(where, provide_cursor(cursor), paging.page_size)
    return _stream_page(page, paging.page_size)


@get(
    "/admin/audit-events",
    tags=["console"],
    summary="The audit trail (event_type, actor_user_id filters)",
    dependencies=STREAM_READERS,
    security=SECURITY,
)
@inject
async def audit_events(
    operator: Operator,
    paging: Paging,
    reader: FromDishka[ConsoleViews],
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    event_type: Annotated[str | None, Parameter(max_length=64)] = None,
    actor_user_id: Annotated[str | None, Parameter(max_length=64)] = None,
) -> StreamPage:
    page = await reader.audit(
        AuditFilter(action=event_type, actor_user_id=actor_user_id),
        provide_cursor(cursor),
        paging.page_size,
    )
    return _stream_page(page, paging.page_size)


@get(
    "/admin/alerts",
    tags=["console"],
    summary="Security alerts",
    dependencies=STREAM_READERS,
    security=SECURITY,
)
@inject
async def alerts(
    operator: Operator,
    paging: Paging,
    reader: FromDishka[ConsoleViews],
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    only_unacknowledged: Annotated[
        bool, Parameter(description="Only alerts nobody acknowledged yet")
    ] = False,
    severity: Annotated[
        Literal["low", "medium", "high"] | None, Parameter(description="Only this severity")
    ] = None,
) -> StreamPage:
    page = await reader.alerts(
        only_unacknowledged, severity, provide_cursor(cursor), paging.page_size
    )
    return _stream_page(page, paging.page_size)


@route(
    "/admin/alerts/{alert_id:str}/ack",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT, HttpMethod.POST],
    tags=["console"],
    summary="Acknowledge an alert (idempotent)",
    status_code=200,
    dependencies=READERS,
    security=SECURITY,
)
@inject
async def acknowledge(
    request: Request[Any, Any, Any],
    operator: Operator,
    alert_id: Id,
    use_case: FromDishka[AcknowledgeAlert],
) -> dict[str, Any]:
    return await use_case(operator, alert_id, request_context(request))


@get(
    "/admin/cookie-activity",
    tags=["console"],
    summary="Cookie-consent events",
    description=(
        "Newest first; `client_id` or `user_id` narrows the list. Keyset paging: pass "
        "`next_cursor` back as `cursor`."
    ),
    dependencies=STREAM_READERS,
    security=SECURITY,
)
@inject
async def cookie_activity(
    operator: Operator,
    paging: Paging,
    store: FromDishka[ConsentViews],
    client_id: Annotated[str | None, Parameter(max_length=128)] = None,
    user_id: Annotated[str | None, Parameter(max_length=64)] = None,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
) -> StreamPage:
    page = await store.consent(
        client_id=client_id, user_id=user_id, cursor=provide_cursor(cursor), limit=paging.page_size
    )
    return _stream_page(page, paging.page_size)


def _cell(value: Any) -> str:
    """Text a spreadsheet shows as text: a leading formula character is defused with a quote."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def whole_list_export(cursor: str | None) -> None:
    """A CSV export streams the whole list, so a ``cursor`` beside ``format=csv`` would be
    ignored: it is refused instead (422 naming it). An empty one means none, as on the JSON
    list's first page."""
    if cursor:
        raise ValidationException(
            extra=[{"key": "cursor", "message": "is not used with format=csv (the whole list)"}]
        )


async def csv_stream(
    header: list[str], rows: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    async for row in rows:
        writer.writerow([_cell(row.get(key)) for key in header])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@get(
    "/admin/{kind:str}",
    tags=["console"],
    summary="Submissions: waitlist, contacts, pilot-requests, investor-interest, client-errors",
    description=(
        "Keyset pages, or `?format=csv` for a streamed export of the whole list (no `cursor`: 422)."
    ),
    media_type=CSV,
    responses={
        200: ResponseSpec(StreamPage, description="A keyset page (JSON), or the CSV export")
    },
    dependencies=STREAM_READERS,
    security=SECURITY,
    opt=documented(parameters={"kind": {"enum": sorted(SUBMISSIONS)}}),
)
@inject
async def submissions(
    operator: Operator,
    paging: Paging,
    kind: Annotated[str, Parameter(max_length=32)],
    leads: FromDishka[SubmissionViews],
    export: FromDishka[SubmissionExport],
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    format: Annotated[
        Literal["json", "csv"], Parameter(description="`csv` streams the whole list as CSV")
    ] = "json",
) -> Any:
    table = SUBMISSIONS.get(kind)
    if table is None:
        raise NotFound(
            f"No console list called {kind!r}; the lists are {', '.join(sorted(SUBMISSIONS))}."
        )
    if format == "csv":
        whole_list_export(cursor)
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        # A Stream takes the handler's media type (CSV); the JSON page below sets its own.
        return Stream(
            csv_stream(export.columns(table), export.rows(table)),
            headers={
                "Content-Disposition": f'attachment; filename="{kind}-{stamp}.csv"',
            },
        )
    page = await leads.page(table, provide_cursor(cursor), paging.page_size)
    return Response(_stream_page(page, paging.page_size), media_type=MediaType.JSON)


@post(
    "/admin/send-email",
    tags=["console"],
    summary="Send an email as an operator (dev)",
    description="422 when `to` is not one address or `subject` holds a line break.",
    status_code=202,
    dependencies=DEVS,
    security=SECURITY,
)
@inject
async def send_email(
    request: Request[Any, Any, Any],
    operator: Operator,
    data: JSONBody[SendEmail],
    use_case: FromDishka[SendOperatorEmail],
) -> Queued:
    mail = OperatorEmail(
        to=request_email(request, data.to, field="to"),
        subject=checked_header_text(data.subject, field="subject"),
        body=data.body,
    )
    await use_case(operator, mail, request_context(request))
    return Queued(status="queued")


def document_exports(openapi: OpenAPI) -> None:
    """The submission lists answer JSON pages or, with ``format=csv``, CSV: describe both."""
    item = (openapi.paths or {}).get("/api/v1/admin/{kind}")
    if item is not None and item.get is not None and item.get.responses:
        ok = item.get.responses.get("200")
        content = getattr(ok, "content", None)
        if content is not None:
            content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


ROUTES = [
    summary,
    list_users,
    user_detail,
    change_user,
    end_user_sessions,
    logs,
    audit_events,
    alerts,
    acknowledge,
    cookie_activity,
    send_email,
    submissions,
]
