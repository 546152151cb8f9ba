"""Ports of the identity context."""

from __future__ import annotations

from typing import Protocol

from orbsurv.domain.identity import User
from orbsurv.domain.pagination import Page, PageRequest


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert a new user; raise ``Conflict`` (``email_taken``, ``username_taken``)
        on a duplicate."""
        ...

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None:
        """Look up by normalised email."""
        ...

    async def list(self, page: PageRequest) -> Page[User]:
        """Newest first, ties broken by id."""
        ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...
