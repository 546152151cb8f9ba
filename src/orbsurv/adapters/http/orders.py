"""Pre-order routes: the site's purchase path, its registration link, and orders afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from dishka import FromDishka
from litestar import MediaType, Request, Response, get, post, route
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import JSONBody, Parameter
from litestar.response import Stream

from orbsurv.adapters.http.auth import SECURITY, current_principal, requires, with_session_cookies
from orbsurv.adapters.http.bodies import decode_body
from orbsurv.adapters.http.client import request_context
from orbsurv.adapters.http.console import CSV, csv_stream, whole_list_export
from orbsurv.adapters.http.di import inject
from orbsurv.adapters.http.identity import REGISTRATION_LIMIT, REGISTRATION_PROBLEMS, TokenPair
from orbsurv.adapters.http.leads import Protected
from orbsurv.adapters.http.openapi import documented
from orbsurv.adapters.http.pagination import KEYSET_PAGING, encode_cursor, provide_cursor
from orbsurv.adapters.http.schemas import Email, Name, NewPassword, blank_to_none, request_email
from orbsurv.adapters.http.throttling import throttled
from orbsurv.application.orders.manage import CancelOrder, ListMyOrders, ListOrders
from orbsurv.application.orders.place import OrderRequest, PlaceOrder
from orbsurv.application.orders.ports import OrderExport
from orbsurv.application.orders.registration import OrderSignUp, RegisterFromOrder, ViewOrderLink
from orbsurv.application.throttle import Bucket
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.identity import Permission, Principal
from orbsurv.domain.orders import Order, OrderStatus
from orbsurv.domain.pagination import PageRequest

NO_STORE = CacheControlHeader(no_store=True)
READERS = {"operator": Provide(requires(Permission.READ_CONSOLE))}
OPERATORS = {"operator": Provide(requires(Permission.MANAGE_CONTENT))}
Token = Annotated[str, msgspec.Meta(max_length=512)]
PriceIn = Annotated[str, msgspec.Meta(max_length=64)] | int | float | None


def storable(value: str | None, field: str) -> str | None:
    """Refuse what PostgreSQL cannot store in text (NUL, lone surrogates) on every database."""
    if value is not None and ("\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)):
        raise FieldInvalid(
            field, "contains a character that cannot be stored (NUL or a lone surrogate)"
        )
    return value


class OrderForm(Protected, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=255)]
    email: Email
    plan_type: Annotated[str, msgspec.Meta(max_length=64)]
    price: PriceIn = None  # ignored: the catalogue's price applies


class OrderOut(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str
    plan_type: str
    price: float  # major units of ``currency`` per month, from the catalogue
    currency: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            email=order.email,
            name=order.name,
            plan_type=order.plan_type,
            price=order.price_cents / 100,
            currency=order.currency,
            status=order.status.value,
            created_at=order.created_at,
        )


class AdminOrderOut(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str
    plan_type: str
    price: float
    currency: str
    status: str
    created_at: datetime
    updated_at: datetime
    user_id: str | None

    @classmethod
    def of(cls, order: Order) -> AdminOrderOut:
        return cls(
            **msgspec.structs.asdict(OrderOut.of(order)),
            updated_at=order.updated_at,
            user_id=order.user_id,
        )


class OrderLinkOut(msgspec.Struct, frozen=True):
    email: str
    name: str
    plan_type: str
    status: str


class OrderPage(msgspec.Struct, frozen=True):
    items: list[OrderOut]
    total: int
    page: int
    page_size: int
    pages: int


class AdminOrderPage(msgspec.Struct, frozen=True):
    items: list[AdminOrderOut]
    next_cursor: str | None
    page_size: int


class RegistrationFromOrder(msgspec.Struct, kw_only=True):
    """What the site's sign-up page posts; its ``email`` field (and any other) is ignored: the
    account takes the address the link was mailed to."""

    token: Token
    password: NewPassword
    name: Name | None = None
    organization: Name | None = None


class OrderChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["cancelled"]


@post(
    "/orders",
    tags=["orders"],
    summary="Place a pre-order (the site's purchase path)",
    description=(
        "JSON or form-encoded `{name, email, plan_type, price?}`; `plan_type` is a plan of the "
        "server's catalogue in any case (an unknown plan is 422 listing the plans, before any "
        "rate limit is spent). The stored and returned `price` and `currency` are always the "
        "catalogue's: a `price` the client sends is ignored, whatever it says. A registration "
        "link goes out by mail (one live link per address, shared by further orders; the mail "
        "names the plan of the order that sent it). Once every order of the address was "
        "cancelled, the next order mails a new link and the old one stops working. An address "
        "that already has an account gets an 'order received, sign in' mail instead, and the "
        "answer is the same. Never returns the registration token. Rate limited per client IP "
        "like the public forms (429 with Retry-After); honeypot `website`; 403 "
        "`captcha_failed` when a captcha is configured and not solved."
    ),
    status_code=201,
    responses={
        403: ResponseSpec(None, description="captcha_failed"),
        429: ResponseSpec(None, description="Too many orders from this client"),
    },
)
@inject
async def place_order(
    request: Request[Any, Any, Any], use_case: FromDishka[PlaceOrder]
) -> OrderOut:
    data = await decode_body(request, OrderForm)
    assert data is not None
    name = blank_to_none(storable(data.name, "name"))
    if name is None:
        raise FieldInvalid("name", "is required")
    context = request_context(request)
    order = await use_case(
        OrderRequest(
            name=name,
            email=request_email(request, data.email),
            plan_type=storable(data.plan_type, "plan_type") or "",
            ip=context.ip,
            user_agent=context.user_agent,
            honeypot=blank_to_none(data.website),
            captcha_token=blank_to_none(data.captcha_token)
            or blank_to_none(data.captcha_token_camel),
        )
    )
    return OrderOut.of(order)


@get(
    "/orders",
    tags=["orders"],
    summary="What a registration link is for (the sign-up page pre-fills the email)",
    description=(
        "`{email, name, plan_type, status}` of the newest pending order placed with the "
        "address the link was mailed to, while the link is live (a link stands for every "
        "pending order of its address, so this can be a later order than the one its mail "
        "names). An unknown, used or expired token, one whose orders were all cancelled, or one "
        "replaced by a new order's link, is 404, the same for each, so nothing can be "
        "enumerated through it."
    ),
    cache_control=NO_STORE,
    responses={404: ResponseSpec(None, description="No live link")},
)
@inject
async def view_order_link(
    use_case: FromDishka[ViewOrderLink],
    token: Annotated[str, Parameter(description="The token from the link in the mail")],
) -> OrderLinkOut:
    preview = await use_case(token)
    order = preview.order
    return OrderLinkOut(
        email=preview.email, name=order.name, plan_type=order.plan_type, status=order.status.value
    )


@post(
    "/auth/register-from-order",
    tags=["orders"],
    summary="Create the account a pre-order's link invites (and sign in)",
    description=(
        "JSON or form `{token, password, name?, organization?}` → 201 with a token pair and "
        "session cookies, like /auth/register. The account takes the address the link was "
        "mailed to (an `email` field is ignored) and counts as verified; every pending order of "
        "that address is linked to it and completed. 400 `token_used`, `token_expired` or "
        "`invalid_token`, and `order_cancelled` when an operator cancelled every order of the "
        "address (nothing is created; a new order mails a new link, after which the old token "
        "is `invalid_token`); cancelled orders are never completed. 409 `email_taken` when "
        "the address was registered meanwhile; 422 for a weak password (the link is not spent). "
        f"{REGISTRATION_LIMIT} Past it nothing is created and the link is not spent."
    ),
    status_code=201,
    cache_control=NO_STORE,
    responses={
        400: ResponseSpec(
            None, description="token_used, token_expired, invalid_token or order_cancelled"
        ),
        409: ResponseSpec(None, description="email_taken"),
    },
    opt={
        **documented(responses={201: TokenPair}, problems=REGISTRATION_PROBLEMS),
        **throttled(Bucket.REGISTRATION),
    },
)
@inject
async def register_from_order(
    request: Request[Any, Any, Any], use_case: FromDishka[RegisterFromOrder]
) -> Response[Any]:
    data = await decode_body(request, RegistrationFromOrder)
    assert data is not None
    registration = await use_case(
        OrderSignUp(
            token=data.token,
            password=data.password,
            context=request_context(request),
            name=blank_to_none(storable(data.name, "name")),
            organization=blank_to_none(storable(data.organization, "organization")),
        )
    )
    response = Response(TokenPair.of(registration.tokens), status_code=201)
    return with_session_cookies(response, request, registration.tokens)


@get(
    "/orders/mine",
    tags=["orders"],
    summary="Your orders",
    description="Orders linked to your account, newest first; paginated.",
    security=SECURITY,
    cache_control=NO_STORE,
)
@inject
async def my_orders(
    request: Request[Any, Any, Any],
    paging: NamedDependency[PageRequest],
    use_case: FromDishka[ListMyOrders],
) -> OrderPage:
    found = await use_case(await current_principal(request), paging)
    return OrderPage(
        items=[OrderOut.of(order) for order in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
        pages=found.pages,
    )


@get(
    "/admin/orders",
    tags=["console"],
    summary="Pre-orders",
    description=(
        "Keyset pages (`cursor`, `next_cursor`), optionally filtered by `status`, or "
        "`?format=csv` for a streamed export of every order, or of those in `status` "
        "(formula-leading cells defused; no `cursor`: 422)."
    ),
    media_type=CSV,
    responses={
        200: ResponseSpec(
            AdminOrderPage,
            description="A keyset page (JSON), or the CSV export",
            generate_examples=False,
        )
    },
    dependencies={**READERS, **KEYSET_PAGING},
    security=SECURITY,
)
@inject
async def admin_orders(
    operator: NamedDependency[Principal],
    paging: NamedDependency[PageRequest],
    use_case: FromDishka[ListOrders],
    export: FromDishka[OrderExport],
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    status: Annotated[
        Literal["pending", "completed", "cancelled"] | None,
        Parameter(description="Only orders in this state"),
    ] = None,
    format: Annotated[
        Literal["json", "csv"], Parameter(description="`csv` streams every order as CSV")
    ] = "json",
) -> Any:
    if format == "csv":
        whole_list_export(cursor)
        stamp = datetime.now(UTC).strftime("%Y%m%d")
        return Stream(
            csv_stream(export.columns(), export.rows(OrderStatus(status) if status else None)),
            headers={
                "Content-Disposition": f'attachment; filename="orders-{stamp}.csv"',
                "X-Content-Type-Options": "nosniff",
            },
        )
    page = await use_case(
        OrderStatus(status) if status else None, provide_cursor(cursor), paging.page_size
    )
    body = AdminOrderPage(
        items=[AdminOrderOut.of(order) for order in page.items],
        next_cursor=encode_cursor(page.next_cursor) if page.next_cursor else None,
        page_size=paging.page_size,
    )
    return Response(body, media_type=MediaType.JSON)


@route(
    "/admin/orders/{order_id:str}",
    http_method=[HttpMethod.PATCH, HttpMethod.PUT],
    tags=["console"],
    summary="Cancel an order (admin or dev)",
    description=(
        '`{"status": "cancelled"}` (the only change there is). Idempotent; the first '
        "cancellation is audited as `order.cancelled`. Unknown id → 404."
    ),
    status_code=200,
    dependencies=OPERATORS,
    security=SECURITY,
)
@inject
async def change_order(
    request: Request[Any, Any, Any],
    operator: NamedDependency[Principal],
    order_id: Annotated[str, Parameter(max_length=64)],
    data: JSONBody[OrderChange],
    use_case: FromDishka[CancelOrder],
) -> AdminOrderOut:
    order = await use_case(operator, order_id, request_context(request))
    return AdminOrderOut.of(order)


def _form_schema(properties: dict[str, Schema | Reference], required: list[str]) -> RequestBody:
    schema = Schema(type=OpenAPIType.OBJECT, properties=properties, required=required)
    return RequestBody(
        required=True,
        content={
            "application/json": OpenAPIMediaType(schema=schema),
            "application/x-www-form-urlencoded": OpenAPIMediaType(schema=schema),
        },
    )


def document_orders(openapi: OpenAPI) -> None:
    """The order routes decode JSON or a form themselves; describe both bodies in the schema."""

    def text(max_length: int, description: str | None = None) -> Schema:
        return Schema(type=OpenAPIType.STRING, max_length=max_length, description=description)

    bodies = {
        "/api/v1/orders": _form_schema(
            {
                "name": text(255),
                "email": Schema(
                    type=OpenAPIType.STRING, max_length=320, format=OpenAPIFormat.EMAIL
                ),
                "plan_type": text(64, "A plan of the catalogue, any case"),
                "price": Schema(
                    one_of=[Schema(type=OpenAPIType.NUMBER), text(64)],
                    description="Ignored: the catalogue's price applies",
                ),
                "website": text(2048, "Honeypot: leave empty"),
                "captchaToken": text(4096),
                "captcha_token": text(4096),
            },
            ["name", "email", "plan_type"],
        ),
        "/api/v1/auth/register-from-order": _form_schema(
            {
                "token": text(512, "The token from the registration link"),
                "password": text(4096, "8 to 128 characters; common passwords are refused"),
                "name": text(255),
                "organization": text(255),
            },
            ["token", "password"],
        ),
    }
    for path, body in bodies.items():
        item = (openapi.paths or {}).get(path)
        if item is not None and item.post is not None:
            item.post.request_body = body


ROUTES = [
    place_order,
    view_order_link,
    register_from_order,
    my_orders,
    admin_orders,
    change_order,
]
