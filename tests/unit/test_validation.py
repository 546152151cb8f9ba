"""Email addresses: confusable compatibility forms are refused, plain international ones kept."""

from __future__ import annotations

import pytest

from orbsurv.adapters.validation import checked_email
from orbsurv.domain.errors import FieldInvalid


@pytest.mark.parametrize(
    "address",
    [
        "\uff44\uff45\uff56@example.com",  # fullwidth "dev"
        "\ufb01le@example.com",  # the "fi" ligature
        "user\u00b2@example.com",  # a superscript two
    ],
)
def test_compatibility_forms_are_refused(address: str) -> None:
    with pytest.raises(FieldInvalid) as caught:
        checked_email(address)
    assert caught.value.field == "email"


@pytest.mark.parametrize("address", ["jos\u00e9@example.com", "\u7528\u6237@example.com"])
def test_plain_international_addresses_are_kept(address: str) -> None:
    assert checked_email(address) == address


def test_a_compatibility_form_in_the_domain_maps_to_the_plain_domain() -> None:
    assert checked_email("dev@\uff45xample.com") == "dev@example.com"  # IDNA, UTS #46
