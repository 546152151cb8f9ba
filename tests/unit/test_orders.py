"""Pre-orders in the core: the plan catalogue, registration-link states, the link policy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from orbsurv.adapters.validation import checked_email, is_special_use
from orbsurv.application.orders.policy import OrderPolicy
from orbsurv.application.orders.registration import link_error
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.orders import (
    DEFAULT_PLANS,
    LinkState,
    Order,
    OrderStatus,
    PlanCatalogue,
    RegistrationLink,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_default_catalogue_is_the_sites_plans() -> None:
    catalogue = PlanCatalogue.parse(DEFAULT_PLANS)
    assert catalogue.keys == ("starter", "perimeter", "enterprise")
    starter = catalogue.find("starter")
    assert (starter.name, starter.price_cents, starter.currency) == ("Starter", 29900, "USD")
    assert catalogue.find("enterprise").price_cents == 0  # priced on quote


@pytest.mark.parametrize("typed", ["PERIMETER", "Perimeter", " perimeter "])
def test_plans_are_found_in_any_case(typed: str) -> None:
    assert PlanCatalogue.parse(DEFAULT_PLANS).find(typed).key == "perimeter"


def test_an_unknown_plan_names_the_field_and_lists_the_plans() -> None:
    with pytest.raises(FieldInvalid) as caught:
        PlanCatalogue.parse(DEFAULT_PLANS).find("platinum")
    assert caught.value.field == "plan_type"
    assert "starter, perimeter, enterprise" in caught.value.message


def test_a_configured_catalogue() -> None:
    catalogue = PlanCatalogue.parse("basic=9.99, pro:Professional Plan=120", currency="EUR")
    basic, pro = catalogue.plans
    assert (basic.key, basic.name, basic.price_cents, basic.currency) == (
        "basic",
        "Basic",
        999,
        "EUR",
    )
    assert (pro.name, pro.price_cents) == ("Professional Plan", 12000)


@pytest.mark.parametrize(
    ("spec", "currency", "complaint"),
    [
        ("starter", "USD", "key[:Name]=price"),
        ("starter=abc", "USD", "not a number"),
        ("starter=-1", "USD", ">= 0"),
        ("starter=1.999", "USD", "two decimals"),
        ("starter=NaN", "USD", ">= 0"),
        ("starter=1,STARTER=2", "USD", "twice"),
        ("", "USD", "no plan"),
        ("Bad Key=1", "USD", "key[:Name]=price"),
        ("starter=1", "dollars", "currency"),
    ],
)
def test_bad_catalogues_are_refused(spec: str, currency: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        PlanCatalogue.parse(spec, currency)


def test_an_order_takes_the_catalogues_price() -> None:
    plan = PlanCatalogue.parse(DEFAULT_PLANS).find("perimeter")
    order = Order.place(order_id="o1", email="a@example.com", name="Ada", plan=plan, now=T0)
    assert (order.price_cents, order.currency, order.status) == (64900, "USD", OrderStatus.PENDING)
    cancelled = order.cancelled(T0 + timedelta(minutes=1))
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.created_at == T0
    assert cancelled.updated_at == T0 + timedelta(minutes=1)


def test_a_link_is_live_until_used_or_expired() -> None:
    expires = T0 + timedelta(days=7)
    fresh = RegistrationLink(email="a@example.com", expires_at=expires, used_at=None)
    assert fresh.state(T0) is LinkState.LIVE
    assert fresh.state(expires - timedelta(seconds=1)) is LinkState.LIVE
    assert fresh.state(expires) is LinkState.EXPIRED  # the end is exclusive
    used = RegistrationLink(email="a@example.com", expires_at=expires, used_at=T0)
    assert used.state(T0) is LinkState.USED
    assert used.state(expires + timedelta(days=1)) is LinkState.USED  # used wins over expired


def test_link_errors_carry_codes_a_client_can_act_on() -> None:
    assert link_error(None).code == "invalid_token"
    assert link_error(LinkState.USED).code == "token_used"
    assert link_error(LinkState.EXPIRED).code == "token_expired"
    assert link_error(LinkState.LIVE).code == "invalid_token"


def test_the_link_opens_the_sites_signup_page() -> None:
    assert OrderPolicy(signup_url="https://site.test/signup.html").link("abc") == (
        "https://site.test/signup.html?token=abc"
    )
    assert OrderPolicy(signup_url="https://site.test/s?ref=mail").link("abc") == (
        "https://site.test/s?ref=mail&token=abc"
    )


# --- special-use domains -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["admin@orbsurv.test", "dev@localhost", "a@b.local", "x@svc.invalid"]
)
def test_special_use_domains_only_when_allowed(address: str) -> None:
    assert is_special_use(address.rpartition("@")[2])
    with pytest.raises(FieldInvalid):
        checked_email(address)
    assert checked_email(f" {address.upper()} ", allow_special_use=True) == address


@pytest.mark.parametrize("address", ["a b@localhost", "a@-bad.test", "a@x..test", "@localhost"])
def test_special_use_addresses_are_still_checked(address: str) -> None:
    with pytest.raises(FieldInvalid):
        checked_email(address, allow_special_use=True)


def test_public_domains_are_unaffected() -> None:
    assert not is_special_use("example.com")
    assert checked_email("Ada@Example.com", allow_special_use=True) == "ada@example.com"
