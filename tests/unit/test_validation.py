"""Email addresses: confusable compatibility forms are refused, plain international ones kept."""

from __future__ import annotations

import pytest

from orbsurv.adapters.validation import checked_email, checked_header_text
from orbsurv.domain.errors import FieldInvalid, MixedScript


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


def test_every_line_break_python_knows_is_refused_in_header_text() -> None:
    breaks = [c for c in map(chr, range(0x110000)) if len(f"a{c}b".splitlines()) > 1]
    assert {"\r", "\n", "\x85", "\u2028", "\u2029"} <= set(breaks)
    for character in [*breaks, "\x00", "\t", "\x7f", "\x9b"]:
        with pytest.raises(FieldInvalid) as refused:
            checked_header_text(f"a{character}b", field="subject")
        assert refused.value.field == "subject"
    assert checked_header_text("Grüße — 日本語 ✓", field="subject") == "Grüße — 日本語 ✓"


@pytest.mark.parametrize(
    "address",
    [
        "\u0430dmin@example.com",  # a Cyrillic a among Latin letters
        "admin@ex\u0430mple.com",  # the same in a domain label
        "p\u0430ypal@example.com",
        "\u03bfrbit@example.com",  # a Greek omicron among Latin letters
    ],
)
def test_mixed_script_look_alikes_are_refused(address: str) -> None:
    with pytest.raises(MixedScript) as caught:
        checked_email(address)
    assert caught.value.field == "email"
    assert caught.value.code == "mixed_script"


@pytest.mark.parametrize(
    "address",
    [
        "zo\u00eb@example.com",  # Latin with a diacritic
        "\u7530\u4e2d\u3072\u308d\u3057@example.jp",  # Han with Hiragana (TR39 allows)
        "\u043f\u0440\u0438\u043c\u0435\u0440@example.com",  # all Cyrillic local part
        "ada@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",  # a Cyrillic domain
    ],
)
def test_one_script_per_part_is_welcome(address: str) -> None:
    assert checked_email(address)
