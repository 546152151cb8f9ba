"""Pagination value objects shared by every list.

Offset pages clamp instead of failing (``page < 1`` is page 1, ``page_size`` is kept in
``1..MAX_PAGE_SIZE``); append-only streams also page by a keyset cursor so a deep page costs the
same as the first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

T = TypeVar("T")


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def clamped(cls, page: int | None, page_size: int | None) -> PageRequest:
        return cls(
            page=max(1, page if page is not None else 1),
            page_size=_clamp(
                page_size if page_size is not None else DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE
            ),
        )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.page_size) if self.total else 0


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in a newest-first stream: the last row seen, by (created_at, id)."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    items: Sequence[T]
    next_cursor: Cursor | None
