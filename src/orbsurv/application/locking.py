"""The ``Lock`` port: a named mutual-exclusion lease shared by every API process.

A lock has an expiry (so a holder that dies frees it by itself) and an owner token (so only the
holder can extend or release it: a holder whose lease ran out cannot free its successor's lock).
Holders release in ``finally`` and extend only while they make progress.
"""

from __future__ import annotations

from typing import Protocol


class Lock(Protocol):
    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        """Take ``name`` for ``ttl_seconds``; the owner token, or ``None`` when it is held."""
        ...

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        """Push the expiry to ``ttl_seconds`` from now; ``False`` when ``token`` lost the lock."""
        ...

    async def release(self, name: str, token: str) -> None:
        """Free ``name`` if ``token`` still holds it; otherwise do nothing."""
        ...
