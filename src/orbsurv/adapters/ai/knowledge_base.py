"""The local support assistant: BM25 retrieval (``bm25s``) over the published resources, and a
reply made of the best passages with their slugs. No network, no model download.

Freshness: every change to a resource bumps a revision counter in the database. Before each
search the index compares it with the revision it was built from (one primary-key read) and
rebuilds when it moved, so every worker serves current content without rebuilding per query.
Building and, for big indexes, searching are CPU work: they run in a worker thread so the event
loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import bm25s
from bm25s.tokenization import Tokenized

from orbsurv.domain.content import Resource
from orbsurv.domain.support import NO_MATCH_REPLY, AssistantReply, Passage, Turn

PASSAGE_CHARS = 700  # the most characters in a passage: about one paragraph or two
EXCERPT_CHARS = 400
INLINE_SEARCH_MAX_PASSAGES = 2_000  # above this, searches run in a worker thread
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves orbsurv please want need
get got let lets im ive dont cant wont use using"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@functools.lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    """A light English suffix stripper: plurals and common verb endings (enough for BM25 to
    match ``uploads``/``uploading``/``upload``); numbers and short words are kept."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, replacement in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: len(word) - len(suffix)] + replacement
    return word


def tokenize(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in STOPWORDS]


def _packed(pieces: Sequence[str], joiner: str, limit: int) -> list[str]:
    """``pieces`` (each at most ``limit`` characters) joined greedily with ``joiner`` into
    runs of at most ``limit`` characters, in order."""
    runs: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(joiner) + len(piece) > limit:
            runs.append(current)
            current = ""
        current = f"{current}{joiner}{piece}" if current else piece
    if current:
        runs.append(current)
    return runs


def _fitted(block: str, limit: int) -> list[str]:
    """``block`` cut into pieces of at most ``limit`` characters: at line ends first (a table
    keeps whole rows), then at whitespace inside a line too long alone, then hard for a single
    word longer than ``limit``."""
    if len(block) <= limit:
        return [block]
    lines = [line.rstrip() for line in block.splitlines() if line.strip()]
    if len(lines) > 1:
        return _packed([p for line in lines for p in _fitted(line, limit)], "\n", limit)
    words = block.split()
    if len(words) > 1:
        return _packed([p for word in words for p in _fitted(word, limit)], " ", limit)
    word = block.strip()
    return [word[start : start + limit] for start in range(0, len(word), limit)]


def passages_of(resource: Resource) -> list[str]:
    """The resource's body cut into passages of at most ``PASSAGE_CHARS`` characters,
    paragraphs kept whole and packed together while they fit; a paragraph longer than that
    (a table, a list with no blank lines) is cut at line ends, then at whitespace, then hard.
    The description alone (cut the same way) when there is no body.

    The bound matters beyond readability: a passage's estimated size is charged to the user's
    daily token budget as prompt, so one oversized passage could spend a day's budget."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", resource.body) if p.strip()]
    pieces = [piece for paragraph in paragraphs for piece in _fitted(paragraph, PASSAGE_CHARS)]
    if not pieces:
        pieces = _fitted(resource.description.strip(), PASSAGE_CHARS)
    return _packed(pieces, "\n\n", PASSAGE_CHARS) or [resource.description]


@dataclass(frozen=True, slots=True)
class _Index:
    revision: int
    retriever: Any  # bm25s.BM25, or None for an empty knowledge base
    passages: tuple[Passage, ...]
    vocabulary: dict[str, int]


def build_index(revision: int, resources: Sequence[Resource]) -> _Index:
    """A BM25 index of every passage; the title and description count with each passage.
    Words are numbered here (bm25s takes the ids), which is much faster than handing it text."""
    passages: list[Passage] = []
    documents: list[list[int]] = []
    vocabulary: dict[str, int] = {}
    for resource in resources:
        heading = f"{resource.title} {resource.title} {resource.description}"
        for text in passages_of(resource):
            passages.append(Passage(resource.slug, resource.title, text, 0.0))
            words = tokenize(f"{heading}\n{text}")
            documents.append([vocabulary.setdefault(word, len(vocabulary)) for word in words])
    if not passages:
        return _Index(revision, None, (), {})
    retriever = bm25s.BM25()
    retriever.index(Tokenized(ids=documents, vocab=vocabulary), show_progress=False)
    return _Index(revision, retriever, tuple(passages), vocabulary)


def search_index(index: _Index, query: str, limit: int) -> list[Passage]:
    """Best passage per resource, best first, only those sharing a word with the query."""
    known = [index.vocabulary[word] for word in tokenize(query) if word in index.vocabulary]
    if index.retriever is None or not known or limit < 1:
        return []
    k = min(len(index.passages), limit * 4)
    found, scores = index.retriever.retrieve([known], k=k, show_progress=False)
    best: dict[str, Passage] = {}
    for position, score in zip(found[0], scores[0], strict=True):
        if score <= 0:
            continue
        passage = index.passages[int(position)]
        if passage.slug not in best:
            best[passage.slug] = Passage(passage.slug, passage.title, passage.text, float(score))
        if len(best) == limit:
            break
    return list(best.values())


class PublishedResources(Protocol):
    async def revision(self) -> int: ...

    async def snapshot(self) -> tuple[int, list[Resource]]: ...


class Bm25PassageRetriever:
    """``PassageRetriever`` over the published resources, rebuilt when their revision moves."""

    def __init__(self, source: PublishedResources) -> None:
        self._source = source
        self._index: _Index | None = None
        self._lock = asyncio.Lock()

    async def _current(self) -> _Index:
        revision = await self._source.revision()
        index = self._index
        if index is not None and index.revision == revision:
            return index
        async with self._lock:  # one rebuild at a time; the others wait for it
            index = self._index
            if index is None or index.revision != revision:
                built_from, resources = await self._source.snapshot()
                index = await asyncio.to_thread(build_index, built_from, resources)
                self._index = index
            return index

    async def search(self, query: str, limit: int) -> list[Passage]:
        index = await self._current()
        if len(index.passages) > INLINE_SEARCH_MAX_PASSAGES:
            return await asyncio.to_thread(search_index, index, query, limit)
        return search_index(index, query, limit)


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= EXCERPT_CHARS:
        return flat
    cut = flat[:EXCERPT_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def resource_path(slug: str) -> str:
    """Where a reader opens the resource a reply cites: its route on this service."""
    return f"/api/v1/resources/{slug}"


class KnowledgeBaseAssistant:
    """``SupportAssistant`` without a model: quotes the best passages and names their slugs;
    says plainly when nothing matched."""

    def __init__(self, passages_per_reply: int = 2) -> None:
        self._per_reply = passages_per_reply

    def _compose(self, passages: Sequence[Passage]) -> AssistantReply:
        if not passages:
            return AssistantReply(NO_MATCH_REPLY, ())
        used = list(passages[: self._per_reply])
        lines = ["Here is what the Orbsurv knowledge base says:"]
        for passage in used:
            where = resource_path(passage.slug)
            lines.append(f"\n{passage.title} ({where}):\n{_excerpt(passage.text)}")
        return AssistantReply("\n".join(lines), tuple(p.slug for p in used))

    async def reply(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AssistantReply:
        return self._compose(passages)

    async def stream(
        self, conversation: Sequence[Turn], passages: Sequence[Passage]
    ) -> AsyncIterator[str]:
        text = self._compose(passages).text
        for line in text.splitlines(keepends=True):
            yield line
