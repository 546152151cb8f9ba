"""RFC 9110 §8.3.1 media types: what a client may declare for a stored file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.files import MAX_MEDIA_TYPE, check_media_type

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHAR, min_size=1, max_size=12)
quoted = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=10,
).map(lambda text: f'"{text}"')
parameters = st.lists(
    st.tuples(st.sampled_from(["", " ", "\t "]), tokens, st.one_of(tokens, quoted)), max_size=3
)


@pytest.mark.parametrize(
    "value",
    [
        "application/zip",
        "text/plain; charset=utf-8",
        'text/plain;charset="utf-8"',
        "application/vnd.api+json",
        'multipart/mixed; boundary="a b\\"c"',
        "text/plain;",  # an empty parameter (RFC 9110 §5.6.6 allows it)
    ],
)
def test_media_types_by_the_grammar_pass(value: str) -> None:
    assert check_media_type(value, "content_type") == value


@pytest.mark.parametrize(
    "value",
    [
        "text/plain\r\nX-Injected: 1",
        "text/\nplain",
        "text/plain\r",
        "text",
        "/plain",
        "text/",
        "text /plain",
        "text/plain; charset",
        "text/plain; charset=",
        'text/plain; a="unterminated',
        'text/plain; a="\x7f"',
        "text/plain; a=b c",
        "tëxt/plain",
        "text/plain\x00",
        "",
    ],
)
def test_anything_else_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(FieldInvalid) as refused:
        check_media_type(value, "filetype")
    assert refused.value.field == "filetype"


def test_a_media_type_has_a_length_limit() -> None:
    value = "application/" + "x" * MAX_MEDIA_TYPE
    with pytest.raises(FieldInvalid):
        check_media_type(value, "content_type")


@given(tokens, tokens, parameters)
def test_every_grammatical_media_type_passes(
    kind: str, subtype: str, params: list[tuple[str, str, str]]
) -> None:
    value = f"{kind}/{subtype}" + "".join(f"{ows};{ows}{n}={v}" for ows, n, v in params)
    if len(value) <= MAX_MEDIA_TYPE:
        assert check_media_type(value, "content_type") == value


CONTROLS = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x7f"])


@given(st.text(max_size=20), CONTROLS, st.text(max_size=20))
def test_nothing_with_a_line_break_or_control_passes(head: str, control: str, tail: str) -> None:
    """Not even inside a quoted string (RFC 9110 §5.6.4 allows no CR, LF or NUL there)."""
    for value in (f"text/plain{head}{control}{tail}", f'text/plain; a="{head}{control}{tail}"'):
        with pytest.raises(FieldInvalid):
            check_media_type(value, "content_type")
