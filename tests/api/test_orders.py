"""Pre-orders over HTTP, driven exactly as the Orbsurv site's pages call them: the cart posts each
item to /orders, the mail's link opens signup.html?token=…, which reads /orders?token= and signs up
through /auth/register-from-order. Mail goes to a real SMTP server and the tests follow its link."""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from orbsurv.adapters.persistence.database import make_engine
from orbsurv.adapters.persistence.orders import SqlOrderRepository, SqlRegistrationLinks
from orbsurv.adapters.persistence.tables import order_links, orders
from orbsurv.domain.identity import Role, new_id
from orbsurv.domain.orders import DEFAULT_PLANS, Order, PlanCatalogue
from orbsurv.main.app import make_app
from orbsurv.main.settings import Settings
from tests.api.identity_helpers import PASSWORD, Client, bearer, create_account, fetch, register
from tests.api.test_account import deliver, link_in, mail_to, text_of, token_in
from tests.api.test_conventions import assert_problem
from tests.api.test_intake import captcha_server  # noqa: F401 - a fixture
from tests.api.test_races import serve
from tests.conftest import SettingsFactory, SmtpServer, truncate_all

SIGNUP = "https://site.example/signup.html"
BUYER = "ada@example.com"
ORDER_KEYS = {"id", "email", "name", "plan_type", "price", "currency", "status", "created_at"}


def cart_item(plan_type: str, price: float, email: str = BUYER) -> dict[str, Any]:
    """What js/cart-page.js posts for one cart item."""
    return {"name": "Ada Lovelace", "email": email, "plan_type": plan_type, "price": price}


@pytest.fixture
def order_settings(make_settings: SettingsFactory, smtp_server: SmtpServer) -> Settings:
    return make_settings(
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="none",
        ORDER_SIGNUP_URL=SIGNUP,
    )


@pytest.fixture
async def order_app(order_settings: Settings) -> Litestar:
    return make_app(order_settings)


@pytest.fixture
async def oclient(order_app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(order_app) as client:
        yield client


async def place(client: Client, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/orders", json=body, **kwargs)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def registration_token(client: Client, app: Litestar, smtp: SmtpServer) -> str:
    await place(client, cart_item("starter", 299))
    await deliver(app)
    [mail] = mail_to(smtp, BUYER)
    return token_in(mail)


async def count(settings: Settings, table: str) -> int:
    [row] = await fetch(settings, f"SELECT count(*) FROM {table}")
    return int(row[0])


async def expire_links(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                order_links.update().values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
    finally:
        await engine.dispose()


# --- the whole path ------------------------------------------------------------------------------


async def test_cart_checkout_mail_link_and_account(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer, order_settings: Settings
) -> None:
    first = await place(oclient, cart_item("starter", 299))
    second = await place(oclient, cart_item("perimeter", 649))
    assert first.keys() == ORDER_KEYS
    assert first["status"] == second["status"] == "pending"
    assert (first["email"], first["plan_type"], first["price"], first["currency"]) == (
        BUYER,
        "starter",
        299,
        "USD",
    )
    assert "token" not in str(first) + str(second)

    assert await deliver(order_app) == 1  # one live link for both orders
    [mail] = mail_to(smtp_server, BUYER)
    assert mail["Subject"] == "Your Orbsurv pre-order: create your account"
    assert link_in(mail).startswith(f"{SIGNUP}?token=")
    assert "Starter plan" in text_of(mail)  # the order that mailed the link …
    assert "the sign-up page shows the latest one" in " ".join(text_of(mail).split())
    token = token_in(mail)

    preview = await oclient.get("/api/v1/orders", params={"token": token})  # signup.js
    assert preview.status_code == 200
    assert preview.json() == {
        "email": BUYER,
        "name": "Ada Lovelace",
        "plan_type": "perimeter",
        "status": "pending",
    }
    assert preview.headers["cache-control"] == "no-store"

    # The sign-up form (js/forms.js): every input as a string, the read-only email included.
    signup = await oclient.post(
        "/api/v1/auth/register-from-order",
        json={"token": token, "name": "", "email": BUYER, "password": PASSWORD},
    )
    assert signup.status_code == 201, signup.text
    pair = signup.json()
    assert pair["token_type"] == "bearer"
    assert pair["user"]["email"] == BUYER
    assert pair["user"]["email_verified"] is True
    assert pair["user"]["name"] == "Ada Lovelace"  # from the order, the form's name was empty
    cookies = [c.split("=", 1)[0] for c in signup.headers.get_list("set-cookie")]
    assert {"orbsurv_access", "orbsurv_refresh", "orbsurv_csrf"} <= set(cookies)
    assert signup.headers["cache-control"] == "no-store"
    oclient.cookies.clear()

    mine = await oclient.get("/api/v1/orders/mine", headers=bearer(pair["access_token"]))
    assert mine.status_code == 200
    body = mine.json()
    assert body["total"] == 2
    assert [item["id"] for item in body["items"]] == [second["id"], first["id"]]
    assert {item["status"] for item in body["items"]} == {"completed"}

    assert_problem(
        await oclient.post(
            "/api/v1/auth/register-from-order", json={"token": token, "password": PASSWORD}
        ),
        400,
        "token_used",
    )
    assert_problem(await oclient.get("/api/v1/orders", params={"token": token}), 404, "not_found")
    login = await oclient.post("/api/v1/auth/login", json={"email": BUYER, "password": PASSWORD})
    assert login.status_code == 200
    assert await deliver(order_app) == 0  # no verification mail: the link proved the mailbox
    audit = await fetch(
        order_settings,
        "SELECT details FROM audit_events WHERE action = 'user.registered'",
    )
    assert len(audit) == 1


async def verified_account(client: Client, app: Litestar, smtp: SmtpServer) -> dict[str, Any]:
    """A new account for ``BUYER`` whose address was verified through the mailed link."""
    pair = await register(client, BUYER)
    client.cookies.clear()
    await deliver(app)
    [mail] = mail_to(smtp, BUYER)
    verified = await client.get("/api/v1/auth/verify", params={"token": token_in(mail)})
    assert verified.status_code == 200, verified.text
    smtp.messages.clear()
    return pair


async def test_a_sign_up_from_an_order_spends_the_registration_budget(
    make_settings: SettingsFactory, smtp_server: SmtpServer
) -> None:
    """A sign-up through an order's link creates an account, so it spends the client's
    registration budget with /auth/register: past it, 429 ``rate_limited`` with Retry-After,
    nothing created and the link not spent (another client still signs up with it)."""
    settings = make_settings(
        REGISTRATION_RATE_LIMIT="1",
        TRUSTED_PROXIES="127.0.0.1/32",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        SMTP_TLS="none",
        ORDER_SIGNUP_URL=SIGNUP,
    )
    app = make_app(settings)
    spent = {"x-forwarded-for": "198.51.100.7"}
    async with serve(app) as client:
        registered = await client.post(
            "/api/v1/auth/register",
            json={"email": "first@example.com", "password": PASSWORD},
            headers=spent,
        )
        assert registered.status_code == 201, registered.text
        client.cookies.clear()
        placed = await client.post("/api/v1/orders", json=cart_item("starter", 299), headers=spent)
        assert placed.status_code == 201, placed.text
        await deliver(app)
        token = token_in(mail_to(smtp_server, BUYER)[0])
        refused = await client.post(
            "/api/v1/auth/register-from-order",
            json={"token": token, "password": PASSWORD},
            headers=spent,
        )
        assert_problem(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert await fetch(settings, "SELECT id FROM users WHERE email = :e", e=BUYER) == []
        elsewhere = await client.post(
            "/api/v1/auth/register-from-order",
            json={"token": token, "password": PASSWORD},
            headers={"x-forwarded-for": "198.51.100.8"},
        )
    assert elsewhere.status_code == 201, elsewhere.text


async def test_an_address_with_an_account_gets_a_sign_in_notice(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer
) -> None:
    pair = await verified_account(oclient, order_app, smtp_server)
    first = await place(oclient, cart_item("starter", 299))
    await place(oclient, cart_item("enterprise", 0))
    assert first.keys() == ORDER_KEYS
    assert first["status"] == "pending"
    assert await deliver(order_app) == 1  # one notice, not one per order
    [mail] = mail_to(smtp_server, BUYER)
    assert mail["Subject"] == "We received your Orbsurv pre-order"
    assert "token=" not in text_of(mail)
    mine = (await oclient.get("/api/v1/orders/mine", headers=bearer(pair["access_token"]))).json()
    assert [item["plan_type"] for item in mine["items"]] == ["enterprise", "starter"]


async def test_an_unverified_account_sees_the_orders_of_its_address_only_once_verified(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer
) -> None:
    """Anyone may register an address they do not own (verification is not required to sign
    in); the orders the address's owner places must not show up in that account until the
    mailbox is proved."""
    squatter = await register(oclient, BUYER)
    oclient.cookies.clear()
    await deliver(order_app)
    [verification] = mail_to(smtp_server, BUYER)
    await place(oclient, {**cart_item("enterprise", 0), "name": "Real Buyer, ACME Corp"})
    headers = bearer(squatter["access_token"])
    mine = (await oclient.get("/api/v1/orders/mine", headers=headers)).json()
    assert mine["items"] == []
    assert mine["total"] == 0

    verified = await oclient.get("/api/v1/auth/verify", params={"token": token_in(verification)})
    assert verified.status_code == 200, verified.text
    mine = (await oclient.get("/api/v1/orders/mine", headers=headers)).json()
    assert [(item["name"], item["status"]) for item in mine["items"]] == [
        ("Real Buyer, ACME Corp", "pending")
    ]


# --- what an order stores ------------------------------------------------------------------------


async def test_the_price_is_the_catalogues(oclient: Client, order_settings: Settings) -> None:
    tampered = await place(oclient, cart_item("PERIMETER", 1))
    assert (tampered["plan_type"], tampered["price"]) == ("perimeter", 649)
    # js/purchase.js posts parseFloat(price); a form post sends strings.
    form = await oclient.post(
        "/api/v1/orders",
        data={"name": "Bo", "email": "bo@example.com", "plan_type": "Starter", "price": "0.01"},
    )
    assert form.status_code == 201
    assert form.json()["price"] == 299
    rows = await fetch(order_settings, "SELECT plan_type, price_cents FROM orders ORDER BY 1")
    assert [tuple(row) for row in rows] == [("perimeter", 64900), ("starter", 29900)]


async def test_a_configured_catalogue(make_settings: SettingsFactory) -> None:
    app = make_app(make_settings(ORDER_PLANS="solo:Solo=12.50", ORDER_CURRENCY="EUR"))
    async with AsyncTestClient(app) as client:
        placed = await place(client, {"name": "Ada", "email": BUYER, "plan_type": "solo"})
        assert (placed["price"], placed["currency"]) == (12.5, "EUR")
        problem = assert_problem(
            await client.post("/api/v1/orders", json=cart_item("starter", 299)),
            422,
            "validation_error",
        )
        assert problem["errors"] == [{"field": "plan_type", "message": "must be one of: solo"}]


async def test_an_unknown_plan_is_refused_before_any_limit_is_spent(
    oclient: Client, order_settings: Settings
) -> None:
    for _ in range(12):
        problem = assert_problem(
            await oclient.post("/api/v1/orders", json=cart_item("platinum", 1)),
            422,
            "validation_error",
        )
        assert "starter, perimeter, enterprise" in problem["detail"]
    for n in range(10):
        await place(oclient, cart_item("starter", 299, email=f"b{n}@example.com"))
    limited = await oclient.post("/api/v1/orders", json=cart_item("starter", 299))
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert await count(order_settings, "orders") == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": BUYER, "plan_type": "starter"}, "name"),
        ({"name": "", "email": BUYER, "plan_type": "starter"}, "name"),
        ({"name": "Ada\u0000", "email": BUYER, "plan_type": "starter"}, "name"),
        ({"name": "Ada", "email": "not-an-address", "plan_type": "starter"}, "email"),
        ({"name": "Ada", "email": BUYER}, "plan_type"),
        ({"name": "Ada", "email": BUYER, "plan_type": "st\u0000arter"}, "plan_type"),
        ({"name": "A" * 256, "email": BUYER, "plan_type": "starter"}, "name"),
    ],
)
async def test_bad_orders_are_422_and_store_nothing(
    oclient: Client, order_settings: Settings, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(
        await oclient.post("/api/v1/orders", json=body), 422, "validation_error"
    )
    assert problem["errors"][0]["field"] == field
    assert await count(order_settings, "orders") == 0


async def test_a_filled_honeypot_looks_fine_and_keeps_nothing(
    oclient: Client, order_app: Litestar, order_settings: Settings
) -> None:
    answer = await place(oclient, {**cart_item("starter", 299), "website": "http://spam"})
    assert answer["status"] == "pending"
    assert await count(order_settings, "orders") == 0
    assert await deliver(order_app) == 0


async def test_captcha_when_configured(
    make_settings: SettingsFactory,
    captcha_server: str,  # noqa: F811 - the fixture
) -> None:
    app = make_app(make_settings(CAPTCHA_SECRET_KEY="s3cret", CAPTCHA_VERIFY_URL=captcha_server))
    async with AsyncTestClient(app) as client:
        assert_problem(
            await client.post("/api/v1/orders", json=cart_item("starter", 299)),
            403,
            "captcha_failed",
        )
        await place(client, {**cart_item("starter", 299), "captchaToken": "human"})


# --- the link ----------------------------------------------------------------------------------


async def test_unknown_tokens(oclient: Client) -> None:
    for token in ("", "made-up", "x" * 600):
        assert_problem(
            await oclient.get("/api/v1/orders", params={"token": token}), 404, "not_found"
        )
    # No token at all is a malformed request, not an unknown link (docs/api.md: 422 naming it).
    problem = assert_problem(await oclient.get("/api/v1/orders"), 422, "validation_error")
    assert problem["errors"] == [{"field": "token", "message": "is required (a query parameter)"}]
    assert_problem(
        await oclient.post(
            "/api/v1/auth/register-from-order", json={"token": "made-up", "password": PASSWORD}
        ),
        400,
        "invalid_token",
    )


async def test_an_expired_link(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer, order_settings: Settings
) -> None:
    token = await registration_token(oclient, order_app, smtp_server)
    await expire_links(order_settings)
    assert_problem(await oclient.get("/api/v1/orders", params={"token": token}), 404, "not_found")
    assert_problem(
        await oclient.post(
            "/api/v1/auth/register-from-order", json={"token": token, "password": PASSWORD}
        ),
        400,
        "token_expired",
    )
    assert await count(order_settings, "users") == 0
    # A new order after expiry mails a new link.
    await place(oclient, cart_item("starter", 299))
    assert await deliver(order_app) == 1
    assert token_in(mail_to(smtp_server, BUYER)[-1]) != token


async def test_a_weak_password_does_not_spend_the_link(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer
) -> None:
    token = await registration_token(oclient, order_app, smtp_server)
    weak = await oclient.post(
        "/api/v1/auth/register-from-order", json={"token": token, "password": "password"}
    )
    assert assert_problem(weak, 422, "validation_error")["errors"][0]["field"] == "password"
    assert (await oclient.get("/api/v1/orders", params={"token": token})).status_code == 200
    done = await oclient.post(
        "/api/v1/auth/register-from-order",
        data={"token": token, "password": PASSWORD, "organization": "Orbital"},
    )
    assert done.status_code == 201
    assert done.json()["user"]["organization"] == "Orbital"


async def cancel_orders(settings: Settings, *order_ids: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                orders.update().where(orders.c.id.in_(order_ids)).values(status="cancelled")
            )
    finally:
        await engine.dispose()


async def test_a_link_dies_with_the_last_pending_order_of_its_address(
    oclient: Client, order_app: Litestar, order_settings: Settings, smtp_server: SmtpServer
) -> None:
    first = await place(oclient, cart_item("starter", 299))
    second = await place(oclient, cart_item("perimeter", 649))  # shares the live link
    await deliver(order_app)
    [mail] = mail_to(smtp_server, BUYER)
    token = token_in(mail)

    await cancel_orders(order_settings, second["id"])
    shown = await oclient.get("/api/v1/orders", params={"token": token})
    assert shown.json()["plan_type"] == "starter"  # the newest order still pending

    await cancel_orders(order_settings, first["id"])
    assert (await oclient.get("/api/v1/orders", params={"token": token})).status_code == 404
    refused = await oclient.post(
        "/api/v1/auth/register-from-order", json={"token": token, "password": PASSWORD}
    )
    assert_problem(refused, 400, "order_cancelled")
    assert await count(order_settings, "users") == 0
    assert await fetch(order_settings, "SELECT used_at FROM order_links") == [(None,)]


async def admin_headers(client: Client, app: Litestar) -> dict[str, str]:
    await create_account(app, "admin@example.com", Role.ADMIN)
    login = await client.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
    )
    client.cookies.clear()
    return bearer(login.json()["access_token"])


async def test_an_order_after_a_cancellation_mails_a_new_link_and_the_old_one_stays_dead(
    oclient: Client, order_app: Litestar, order_settings: Settings, smtp_server: SmtpServer
) -> None:
    admin = await admin_headers(oclient, order_app)
    first = await place(oclient, cart_item("perimeter", 649))
    await deliver(order_app)
    [old_mail] = mail_to(smtp_server, BUYER)
    old = token_in(old_mail)
    cancelled = await oclient.patch(
        f"/api/v1/admin/orders/{first['id']}", json={"status": "cancelled"}, headers=admin
    )
    assert cancelled.status_code == 200, cancelled.text
    refused = await oclient.post(
        "/api/v1/auth/register-from-order", json={"token": old, "password": PASSWORD}
    )
    assert_problem(refused, 400, "order_cancelled")
    assert "place the order again for a new link" in refused.json()["detail"]

    # Doing what the refusal says: the new order mails a new link, for the new order.
    second = await place(oclient, cart_item("starter", 299))
    assert await deliver(order_app) == 1
    old_mail, new_mail = mail_to(smtp_server, BUYER)
    assert "Starter plan" in text_of(new_mail)
    new = token_in(new_mail)
    assert new != old
    assert_problem(await oclient.get("/api/v1/orders", params={"token": old}), 404, "not_found")
    assert_problem(
        await oclient.post(
            "/api/v1/auth/register-from-order", json={"token": old, "password": PASSWORD}
        ),
        400,
        "invalid_token",
    )
    shown = await oclient.get("/api/v1/orders", params={"token": new})
    assert shown.json()["plan_type"] == "starter"

    # A third order while the new link opens the second shares it: no third mail.
    await place(oclient, cart_item("enterprise", 0))
    assert await deliver(order_app) == 0

    signup = await oclient.post(
        "/api/v1/auth/register-from-order", json={"token": new, "password": PASSWORD}
    )
    assert signup.status_code == 201, signup.text
    oclient.cookies.clear()
    statuses = dict(await fetch(order_settings, "SELECT id, status FROM orders"))
    assert statuses[first["id"]] == "cancelled"  # the link never completes a cancelled order
    assert statuses[second["id"]] == "completed"
    assert sorted(statuses.values()) == ["cancelled", "completed", "completed"]


async def test_an_address_registered_meanwhile_is_409(
    oclient: Client, order_app: Litestar, smtp_server: SmtpServer
) -> None:
    token = await registration_token(oclient, order_app, smtp_server)
    await register(oclient, BUYER)
    oclient.cookies.clear()
    assert_problem(
        await oclient.post(
            "/api/v1/auth/register-from-order", json={"token": token, "password": PASSWORD}
        ),
        409,
        "email_taken",
    )


@pytest.mark.postgres
async def test_one_link_opens_one_account_under_concurrency(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    await truncate_all(postgres_url)
    settings = make_settings(DATABASE_URL=postgres_url)
    # The app's engine lives in the test client's loop: the link is issued here on an engine of
    # the test's own, under the key the app derives (the mail path is covered above).
    engine = make_engine(postgres_url)
    key = hmac.new(settings.email_verify_secret.encode(), b"order_registration", "sha256")
    try:
        async with engine.begin() as conn:
            now = datetime.now(UTC)
            token = await SqlRegistrationLinks(conn, key.digest()).issue(
                BUYER, now, now + timedelta(days=1)
            )
            plan = PlanCatalogue.parse(DEFAULT_PLANS).find("starter")
            await SqlOrderRepository(conn).add(
                Order.place(order_id=new_id(), email=BUYER, name="Ada", plan=plan, now=now)
            )
    finally:
        await engine.dispose()
    assert token is not None
    body = {"token": token, "password": PASSWORD}
    async with AsyncTestClient(make_app(settings)) as client:
        answers = await asyncio.gather(
            *(client.post("/api/v1/auth/register-from-order", json=body) for _ in range(4))
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 400, 400, 400]
    for answer in answers:
        if answer.status_code == 400:
            assert answer.json()["code"] == "token_used"
    assert await count(settings, "users") == 1


# --- the console ---------------------------------------------------------------------------------


@pytest.fixture
async def console(
    make_settings: SettingsFactory,
) -> AsyncIterator[tuple[Client, dict[str, str], Settings]]:
    settings = make_settings(ENV="development", INPROCESS_WORKER="false")
    app = make_app(settings)
    async with AsyncTestClient(app) as client:
        await create_account(app, "admin@example.com", Role.ADMIN)
        user = await register(client, "user@example.com")
        admin = await client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
        )
        client.cookies.clear()
        yield (
            client,
            {"admin": admin.json()["access_token"], "user": user["access_token"]},
            settings,
        )


async def test_the_console_lists_exports_counts_and_cancels(
    console: tuple[Client, dict[str, str], Settings],
) -> None:
    client, tokens, settings = console
    admin, user = bearer(tokens["admin"]), bearer(tokens["user"])
    placed = [
        await place(client, cart_item(plan, 0, email=f"{plan}@example.com"))
        for plan in ("starter", "perimeter", "enterprise")
    ]
    page = await client.get("/api/v1/admin/orders", params={"page_size": 2}, headers=admin)
    assert page.status_code == 200
    first = page.json()
    assert [item["id"] for item in first["items"]] == [placed[2]["id"], placed[1]["id"]]
    rest = await client.get(
        "/api/v1/admin/orders", params={"cursor": first["next_cursor"]}, headers=admin
    )
    assert [item["id"] for item in rest.json()["items"]] == [placed[0]["id"]]
    summary = (await client.get("/api/v1/admin/summary", headers=admin)).json()
    assert summary["total_orders"] == 3

    exported = await client.get("/api/v1/admin/orders", params={"format": "csv"}, headers=admin)
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["plan_type"] for row in rows] == ["enterprise", "perimeter", "starter"]
    assert "ip" not in rows[0]

    target = f"/api/v1/admin/orders/{placed[0]['id']}"
    cancelled = await client.patch(target, json={"status": "cancelled"}, headers=admin)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.put(target, json={"status": "cancelled"}, headers=admin)
    assert again.json()["status"] == "cancelled"
    audited = await fetch(
        settings, "SELECT target_id FROM audit_events WHERE action = 'order.cancelled'"
    )
    assert [row[0] for row in audited] == [placed[0]["id"]]  # once, not per repeat
    only = await client.get("/api/v1/admin/orders", params={"status": "cancelled"}, headers=admin)
    assert [item["id"] for item in only.json()["items"]] == [placed[0]["id"]]
    cancelled_csv = await client.get(
        "/api/v1/admin/orders", params={"format": "csv", "status": "cancelled"}, headers=admin
    )
    assert [row["id"] for row in csv.DictReader(io.StringIO(cancelled_csv.text))] == [
        placed[0]["id"]
    ]
    paged_csv = {"format": "csv", "cursor": first["next_cursor"]}
    problem = assert_problem(
        await client.get("/api/v1/admin/orders", params=paged_csv, headers=admin),
        422,
        "validation_error",
    )
    assert [error["field"] for error in problem["errors"]] == ["cursor"]

    assert_problem(
        await client.patch(
            "/api/v1/admin/orders/no-such-order", json={"status": "cancelled"}, headers=admin
        ),
        404,
        "not_found",
    )
    for bad in ({"status": "completed"}, {"status": "cancelled", "price": 1}):
        assert_problem(await client.patch(target, json=bad, headers=admin), 422, "validation_error")
    assert_problem(await client.get("/api/v1/admin/orders", headers=user), 403, "forbidden")
    assert_problem(
        await client.patch(target, json={"status": "cancelled"}, headers=user), 403, "forbidden"
    )
    assert_problem(await client.get("/api/v1/admin/orders"), 401, "unauthenticated")
    assert_problem(await client.get("/api/v1/orders/mine"), 401, "unauthenticated")


# --- the profile page (app/profile.html, js/profile.js) -----------------------------------------


async def test_the_profile_page(client: Client) -> None:
    pair = await register(client)
    client.cookies.clear()
    auth = bearer(pair["access_token"])
    for path in ("/api/v1/app/users/me", "/api/v1/app/auth/me"):
        me = await client.get(path, headers=auth)
        assert me.status_code == 200
        assert me.json()["email"] == BUYER
    # Checked boxes post "true"; unchecked boxes are left out.
    notifications = await client.patch(
        "/api/v1/app/settings/notifications",
        json={
            "email_notifications": "true",
            "alert_notifications": "true",
            "system_updates": "true",
        },
        headers=auth,
    )
    assert notifications.status_code == 200, notifications.text
    saved = notifications.json()
    assert (
        saved["email_notifications"],
        saved["alert_notifications"],
        saved["system_updates"],
    ) == (
        True,
        True,
        True,
    )
    again = await client.patch(
        "/api/v1/app/settings/notifications",
        json={"system_updates": "false", "weekly_digest": True},
        headers=auth,
    )
    assert again.json()["system_updates"] is False
    assert again.json()["email_notifications"] is True  # left out: kept
    assert again.json()["weekly_digest"] is True
    automation = await client.patch(
        "/api/v1/app/settings/automation",
        json={"auto_patrol": "true", "smart_alerts": "true"},
        headers=auth,
    )
    assert automation.status_code == 200
    assert automation.json()["auto_patrol"] is True
    assert automation.json()["smart_alerts"] is True
    assert (
        await client.patch("/api/v1/app/settings/automation", json={}, headers=auth)
    ).json() == automation.json()
    stored = (await client.get("/api/v1/app/settings", headers=auth)).json()
    assert stored["notifications"] == again.json()
    assert stored["automation"] == automation.json()
    for path, bad, field in (
        ("notifications", {"email_notifications": "maybe"}, "email_notifications"),
        ("notifications", {"push_notifications": "true"}, "push_notifications"),
        ("automation", {"auto_patrol": "on"}, "auto_patrol"),
        ("automation", {"captchaToken": "x"}, "captchaToken"),
    ):
        problem = assert_problem(
            await client.patch(f"/api/v1/app/settings/{path}", json=bad, headers=auth),
            422,
            "validation_error",
        )
        assert problem["errors"][0]["field"] == field
    profile = await client.patch(
        "/api/v1/app/account/profile",
        json={"name": "Ada L", "email": BUYER, "organization": "Orbital"},
        headers=auth,
    )
    assert profile.status_code == 200
    assert profile.json()["organization"] == "Orbital"


async def test_the_settings_schema_is_documented(client: Client) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    components = schema["components"]["schemas"]
    notifications = next(v for k, v in components.items() if k.endswith("NotificationSettings"))
    automation = next(v for k, v in components.items() if k.endswith("AutomationSettings"))
    assert {"email_notifications", "alert_notifications", "system_updates"} <= set(
        notifications["properties"]
    )
    assert {"auto_patrol", "smart_alerts"} <= set(automation["properties"])
    for path in ("/api/v1/orders", "/api/v1/auth/register-from-order", "/api/v1/admin/orders"):
        assert path in schema["paths"]
    assert {"201", "403", "422", "429"} <= set(
        schema["paths"]["/api/v1/orders"]["post"]["responses"]
    )
    assert {"201", "400", "409", "422"} <= set(
        schema["paths"]["/api/v1/auth/register-from-order"]["post"]["responses"]
    )


# --- special-use domains ------------------------------------------------------------------------


async def test_special_use_addresses_outside_production(
    client: Client, make_settings: SettingsFactory
) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "dev@localhost", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["user"]["email"] == "dev@localhost"
    strict = make_app(make_settings(ALLOW_SPECIAL_USE_EMAIL_DOMAINS="false"))
    async with AsyncTestClient(strict) as other:
        problem = assert_problem(
            await other.post(
                "/api/v1/auth/register",
                json={"email": "admin@orbsurv.test", "password": PASSWORD},
            ),
            422,
            "validation_error",
        )
        assert problem["errors"][0]["field"] == "email"
