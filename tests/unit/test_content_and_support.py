"""Pure rules of the knowledge base and support chat."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbsurv.domain.content import (
    Resource,
    ResourceChange,
    ResourceType,
    checked_url,
    normalise_slug,
    slugify,
    storable,
)
from orbsurv.domain.errors import FieldInvalid
from orbsurv.domain.support import (
    Passage,
    Speaker,
    Turn,
    cited_sources,
    estimate_tokens,
    recent_turns,
    seconds_until_next_day,
    settled_tokens,
)


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Getting Started", "getting-started"),
        ("  Café & Crème — 2FA!  ", "cafe-creme-2fa"),
        ("???", "resource"),
        ("x" * 300, "x" * 120),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_normalise_slug() -> None:
    assert normalise_slug("  Getting-STARTED ") == "getting-started"
    for bad in ("", "a--b", "-a", "a b", "ünï", "a" * 121, "a_b"):
        with pytest.raises(FieldInvalid):
            normalise_slug(bad)


@given(st.text(max_size=200))
def test_slugify_always_makes_a_valid_slug(title: str) -> None:
    assert normalise_slug(slugify(title)) == slugify(title)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "//example.com",
        "https://",
        "http://exa mple.com",
        "ftp://example.com",
    ],
)
def test_only_http_and_https_links(url: str) -> None:
    with pytest.raises(FieldInvalid) as raised:
        checked_url(url)
    assert raised.value.field == "url"


def test_good_links_pass() -> None:
    assert checked_url(" https://docs.example.com/a?b=c ") == "https://docs.example.com/a?b=c"
    assert checked_url("HTTP://example.com") == "HTTP://example.com"


@pytest.mark.parametrize("text", ["nul\x00", "lone \ud800 surrogate"])
def test_unstorable_text_names_the_field(text: str) -> None:
    with pytest.raises(FieldInvalid) as raised:
        storable(text, "body")
    assert raised.value.field == "body"


def test_a_change_reports_what_changed() -> None:
    then = datetime(2026, 1, 1, tzinfo=UTC)
    resource = Resource("a", "A", ResourceType.API, "d", then, then, url="https://x.example")
    now = datetime(2026, 2, 1, tzinfo=UTC)
    assert ResourceChange(title="A").apply(resource, now) == []
    assert resource.updated_at == then
    assert ResourceChange(title="B", clear_url=True).apply(resource, now) == ["title", "url"]
    assert (resource.title, resource.url, resource.updated_at) == ("B", None, now)


def test_recent_turns_keep_the_newest_within_budget() -> None:
    turns = [Turn(Speaker.USER, "a" * 40), Turn(Speaker.ASSISTANT, "b" * 40)]
    turns.append(Turn(Speaker.USER, "c" * 40))  # 10 tokens each
    assert recent_turns(turns, 25) == turns[1:]
    assert recent_turns(turns, 30) == turns
    assert recent_turns(turns, 5) == [Turn(Speaker.USER, "c" * 20)]  # the question, cut


@given(
    st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=20),
    st.integers(min_value=1, max_value=500),
)
def test_recent_turns_invariants(texts: list[str], budget: int) -> None:
    turns = [Turn(Speaker.USER, text) for text in texts]
    kept = recent_turns(turns, budget)
    assert kept  # the question always goes
    assert sum(estimate_tokens(turn.text) for turn in kept) <= max(budget, 1)
    assert kept[-1].text == turns[-1].text[: budget * 4]
    assert [t.text for t in kept[:-1]] == [t.text for t in turns[len(turns) - len(kept) : -1]]


def test_cited_sources() -> None:
    passages = [Passage("a", "A", "", 1), Passage("b", "B", "", 1)]
    assert cited_sources("see /resources/b", passages) == ("b",)
    assert cited_sources("no citation", passages) == ("a", "b")
    assert cited_sources("/resources/zzz", []) == ()


def test_seconds_until_next_day() -> None:
    assert seconds_until_next_day(datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)) == 30
    assert seconds_until_next_day(datetime(2026, 11, 30, 0, 0, tzinfo=UTC)) == 86_400


@pytest.mark.parametrize(
    ("reported", "charged"),
    [(None, 300), (42, 42), (0, 0), (-1_000_000, 0), (2**63 - 1, 2_000), (2_000, 2_000)],
)
def test_the_upstreams_token_count_is_bounded(reported: int | None, charged: int) -> None:
    assert settled_tokens(reported, reserved=1_000, estimated=300) == charged
