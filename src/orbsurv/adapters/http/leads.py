"""Public forms, client error reports and analytics events: anonymous, abuse-controlled."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import Request, Response, post
from litestar.exceptions import HTTPException

from orbsurv.adapters.http.auth import access_token
from orbsurv.adapters.http.bodies import bounded_body, decode_body
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.di import app_container, inject, inject_app
from orbsurv.adapters.http.inputs import in_utc
from orbsurv.adapters.http.media import media_type, strict_validation_error
from orbsurv.adapters.http.openapi import documented
from orbsurv.adapters.http.schemas import Email, Instant, Name, blank_to_none, request_email
from orbsurv.adapters.http.throttling import throttled
from orbsurv.application.analytics.record import RecordEvents
from orbsurv.application.leads.submit import (
    JoinWaitlist,
    LeadSubmission,
    ReportClientError,
    SubmitLead,
)
from orbsurv.application.throttle import Bucket
from orbsurv.domain.analytics import MAX_BATCH, AnalyticsEvent, EventType
from orbsurv.domain.errors import Unauthenticated
from orbsurv.domain.leads import ClientError, Form, Lead

PersonName = Annotated[str, msgspec.Meta(min_length=2, max_length=255)]  # the forms' 2..255


class Protected(msgspec.Struct, kw_only=True):
    """Fields every public form may carry: a honeypot and a captcha token (two spellings)."""

    website: Annotated[str, msgspec.Meta(max_length=2048)] | None = None  # hidden from people
    captcha_token: Annotated[str, msgspec.Meta(max_length=4096)] | None = None
    captcha_token_camel: Annotated[str, msgspec.Meta(max_length=4096)] | None = msgspec.field(
        default=None, name="captchaToken"
    )


class WaitlistForm(Protected, kw_only=True):
    email: Email
    name: Name | None = None
    source: Name | None = None


class ContactForm(Protected, kw_only=True):
    name: PersonName
    email: Email
    message: Annotated[str, msgspec.Meta(min_length=10, max_length=5000)]
    company: Name | None = None
    phone: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    topic: Name | None = None


class InvestorForm(Protected, kw_only=True):
    name: PersonName
    email: Email
    amount: Annotated[str, msgspec.Meta(max_length=64)] | int | float | None = None
    note: Annotated[str, msgspec.Meta(max_length=5000)] | None = None


class PilotForm(Protected, kw_only=True):
    name: PersonName
    org: PersonName
    email: Email
    use_case: Annotated[str, msgspec.Meta(min_length=5, max_length=5000)]


class ClientErrorReport(msgspec.Struct, kw_only=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    stack: Annotated[str, msgspec.Meta(max_length=8000)] | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    line: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    column: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class Answer(msgspec.Struct, frozen=True):
    status: str
    message: str


MetadataValue = Annotated[str, msgspec.Meta(max_length=500)] | int | float | bool | None


class EventIn(msgspec.Struct, kw_only=True):
    event_type: Literal["cookie_consent", "page_view", "user_activity"]
    action: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            description=(
                "What happened, 1 to 64 characters; for `cookie_consent` events `accepted` or "
                "`declined` (any other action is 422)"
            ),
        ),
    ]
    page: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    client_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    metadata: Annotated[dict[str, MetadataValue], msgspec.Meta(max_length=20)] | None = None
    occurred_at: Instant | None = None


class EventBatch(msgspec.Struct, kw_only=True):
    events: Annotated[list[EventIn], msgspec.Meta(max_length=MAX_BATCH)]


class EventsAccepted(msgspec.Struct, frozen=True):
    accepted: Annotated[int, msgspec.Meta(ge=0, description="How many events were recorded")]


THANKS = {
    Form.WAITLIST: "You are on the waitlist.",
    Form.CONTACT: "Thank you for your message.",
    Form.INVESTOR_INTEREST: "Thank you for your interest.",
    Form.PILOT_REQUEST: "Thank you: we will be in touch about a pilot.",
}


def _text(value: str | None) -> str | None:
    return blank_to_none(value)


async def _submit(
    request: Request[Any, Any, Any],
    use_case: SubmitLead | JoinWaitlist,
    form: Form,
    data: Protected,
    fields: dict[str, Any],
    email: str,
) -> Response[Any]:
    context = request_context(request)
    created = await use_case(
        LeadSubmission(
            lead=Lead(form=form, email=request_email(request, email), fields=fields),
            ip=context.ip,
            user_agent=context.user_agent,
            honeypot=_text(data.website),
            captcha_token=_text(data.captcha_token) or _text(data.captcha_token_camel),
        )
    )
    status = 201 if created else 200
    return Response(Answer(status="ok", message=THANKS[form]), status_code=status)


# 201 for a new submission; 200 when it repeats one (the same address on the waitlist).
FORM_ANSWERS = {201: Answer, 200: Answer}
FORM_DOC = 'JSON or form-encoded; `""` counts as absent; rate limited per client IP and form.'


@post(
    "/waitlist",
    tags=["marketing"],
    summary="Join the waitlist",
    description=f"201, or 200 for an address already on it (its source is updated). {FORM_DOC}",
    status_code=201,
    opt=documented(body=WaitlistForm, form=True, responses=FORM_ANSWERS),
)
@inject_app  # JoinWaitlist is APP-scoped: no request scope to open and close
async def waitlist(
    request: Request[Any, Any, Any], use_case: FromDishka[JoinWaitlist]
) -> Response[Any]:
    data = await decode_body(request, WaitlistForm)
    assert data is not None
    fields = {"name": _text(data.name), "source": _text(data.source)}
    return await _submit(request, use_case, Form.WAITLIST, data, fields, data.email)


@post(
    "/contact",
    tags=["marketing"],
    summary="Send a message",
    description=FORM_DOC,
    status_code=201,
    opt=documented(body=ContactForm, form=True, responses=FORM_ANSWERS),
)
@inject
async def contact(
    request: Request[Any, Any, Any], use_case: FromDishka[SubmitLead]
) -> Response[Any]:
    data = await decode_body(request, ContactForm)
    assert data is not None
    fields = {
        "name": data.name,
        "message": data.message,
        "company": _text(data.company),
        "phone": _text(data.phone),
        "topic": _text(data.topic),
    }
    return await _submit(request, use_case, Form.CONTACT, data, fields, data.email)


@post(
    "/investor_interest",
    tags=["marketing"],
    summary="Register investor interest",
    description=FORM_DOC,
    status_code=201,
    opt=documented(body=InvestorForm, form=True, responses=FORM_ANSWERS),
)
@inject
async def investor_interest(
    request: Request[Any, Any, Any], use_case: FromDishka[SubmitLead]
) -> Response[Any]:
    data = await decode_body(request, InvestorForm)
    assert data is not None
    amount = None if data.amount is None else _text(str(data.amount))
    fields = {"name": data.name, "amount": amount, "note": _text(data.note)}
    return await _submit(request, use_case, Form.INVESTOR_INTEREST, data, fields, data.email)


@post(
    "/pilot_request",
    tags=["marketing"],
    summary="Request a pilot",
    description=FORM_DOC,
    status_code=201,
    opt=documented(body=PilotForm, form=True, responses=FORM_ANSWERS),
)
@inject
async def pilot_request(
    request: Request[Any, Any, Any], use_case: FromDishka[SubmitLead]
) -> Response[Any]:
    data = await decode_body(request, PilotForm)
    assert data is not None
    fields = {"name": data.name, "org": data.org, "use_case": data.use_case}
    return await _submit(request, use_case, Form.PILOT_REQUEST, data, fields, data.email)


@post(
    "/client_errors",
    tags=["marketing"],
    summary="Report a browser error",
    description="202; grouped by message and first stack frame; 30 a minute per client IP.",
    status_code=202,
    opt=documented(body=ClientErrorReport, form=True),
)
@inject
async def client_errors(
    request: Request[Any, Any, Any], use_case: FromDishka[ReportClientError]
) -> Answer:
    data = await decode_body(request, ClientErrorReport)
    assert data is not None
    context = request_context(request)
    error = ClientError(
        message=data.message,
        stack=_text(data.stack),
        url=_text(data.url),
        line=data.line,
        column=data.column,
        user_agent=_text(data.user_agent) or context.user_agent,
    )
    await use_case(error, context.ip)
    return Answer(status="accepted", message="Thank you for the report.")


async def _optional_user(request: Request[Any, Any, Any]) -> str | None:
    """Signed-in callers are recorded; stale or bad credentials simply count as anonymous."""
    try:
        token = access_token(request)
    except Exception:  # noqa: BLE001 - a bad header or CSRF miss: anonymous
        return None
    if token is None:
        return None
    try:
        principal = await request.app.state.authenticate(token)
    except Unauthenticated:
        return None
    return str(principal.user_id)


@post(
    "/analytics/events",
    tags=["analytics"],
    summary="Record analytics or cookie-consent events",
    description=(
        "One event or `{events: [...]}` (at most 50), anonymous or signed in: 202. Each event's "
        "`metadata` holds at most 20 keys, values of at most 500 characters and 4 KiB in all "
        "(422 naming the field otherwise). The body is at most `ANALYTICS_MAX_BODY_BYTES` "
        "(default 64 KiB; 413 `payload_too_large` beyond). Rate limited per client IP "
        "(`ANALYTICS_RATE_LIMIT` requests per `ANALYTICS_RATE_WINDOW_SECONDS`, default 30 a "
        "minute): 429 `rate_limited` with `Retry-After` beyond."
    ),
    status_code=202,
    opt={
        **documented(
            body=(EventIn, EventBatch),
            problems={
                413: "payload_too_large: the body is over ANALYTICS_MAX_BODY_BYTES.",
                429: "rate_limited: this client IP's budget is spent; see Retry-After.",
            },
        ),
        **throttled(Bucket.ANALYTICS),
    },
)
async def analytics_events(request: Request[Any, Any, Any]) -> EventsAccepted:
    if media_type(request) != "application/json":
        raise HTTPException(status_code=415, detail="Send the events as application/json.")
    body = await bounded_body(request, request.app.state.settings.analytics_max_body_bytes)
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPException(status_code=400, detail="The request body is not valid JSON.") from exc
    batched = isinstance(raw, dict) and "events" in raw
    model: type[EventBatch] | type[EventIn] = EventBatch if batched else EventIn
    try:
        converted = msgspec.convert(raw, model)
    except msgspec.ValidationError as exc:
        raise strict_validation_error(exc, model, raw) from None
    incoming = converted.events if isinstance(converted, EventBatch) else [converted]
    events = [
        AnalyticsEvent(
            event_type=EventType(event.event_type),
            action=event.action,
            page=_text(event.page),
            client_id=_text(event.client_id),
            occurred_at=None
            if event.occurred_at is None
            else in_utc(
                event.occurred_at, f"events[{index}].occurred_at" if batched else "occurred_at"
            ),
            metadata=dict(event.metadata or {}),
        )
        for index, event in enumerate(incoming)
    ]
    # Who is asking first: the check may read the database (when the cache cannot answer) on a
    # connection of its own, so the request's connection is taken only after it.
    user_id = await _optional_user(request)
    async with app_container(request.app.state)() as scope:
        use_case = await scope.get(RecordEvents)
        count = await use_case(events, user_id, request_context(request), batched=batched)
    return EventsAccepted(accepted=count)


FORM_ROUTES = [waitlist, contact, investor_interest, pilot_request, client_errors]
ROUTES = [*FORM_ROUTES, analytics_events]
