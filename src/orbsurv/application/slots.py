"""Counted leases (the ``Slots`` port) and the rule built on them: a user streams at most
``UPLOAD_MAX_CONCURRENT_PER_USER`` request bodies at once.

Why: every streamed upload costs a task, a socket, a storage write and a scanner session for as
long as its client takes. Without a bound per user, one account that opens dozens of uploads and
stalls them ties those up for everybody. Beyond the bound the next upload is refused at once
(429 ``too_many_uploads`` with ``Retry-After``) before a byte is read.

A slot is a lease, not a counter: it expires ``LEASE_SECONDS`` after its last renewal, and the
holder renews it every third of that while its upload runs, so a worker that crashes (and never
releases) gives its slots back within ``LEASE_SECONDS``. Every other way out of an upload (done,
refused, interrupted, cancelled) releases the slot in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from orbsurv.application.faults import log_failure
from orbsurv.domain.errors import RateLimited

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a dead holder's slot comes back after at most this long
RETRY_AFTER_SECONDS = 5


class Slots(Protocol):
    """At most ``limit`` live leases per key, shared by every API process. A lease has an
    owner token (only its holder renews or releases it) and an expiry."""

    async def acquire(self, key: str, limit: int, lease_seconds: float) -> str | None:
        """Take one of ``limit`` slots of ``key`` for ``lease_seconds``: its token, or ``None``
        when ``limit`` live leases exist. Expired leases do not count."""
        ...

    async def renew(self, key: str, token: str, lease_seconds: float) -> bool:
        """Push the lease's expiry to ``lease_seconds`` from now; ``False`` when it is gone."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Give the slot back (nothing happens when it already expired)."""
        ...


@dataclass(frozen=True, slots=True)
class UploadGate:
    """``async with gate.hold(user_id):`` around the streaming of one request body.

    Raises ``RateLimited`` (429, code ``too_many_uploads``, ``Retry-After``) when the user
    already streams ``per_user`` bodies."""

    slots: Slots
    per_user: int = 4
    lease_seconds: float = LEASE_SECONDS

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        key = f"uploads:{user_id}"
        token = await self.slots.acquire(key, self.per_user, self.lease_seconds)
        if token is None:
            raise RateLimited(
                f"You already have {self.per_user} uploads in progress; wait for one to end.",
                retry_after=RETRY_AFTER_SECONDS,
                code="too_many_uploads",
            )
        renewing = asyncio.create_task(self._renew(key, token))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            try:
                await asyncio.shield(self.slots.release(key, token))
            # the lease runs out by itself; log_failure keeps a bug's traceback
            except Exception as exc:  # noqa: BLE001
                log_failure(logger, exc, "could not release an upload slot of %s", key)

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.slots.renew(key, token, self.lease_seconds)
            except Exception as exc:  # noqa: BLE001 (log_failure keeps a bug's traceback)
                log_failure(logger, exc, "could not renew an upload slot of %s", key)
