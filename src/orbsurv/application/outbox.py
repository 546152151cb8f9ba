"""DeliverOutbox: send queued mail through the Mailer port, with retries and backoff.

Safe to run in several workers at once: a claim leases messages so no two workers hold the same
one. A message that keeps failing is retried with exponential backoff and given up (dead) after
``max_attempts``; a dead message stays in the outbox for an operator to read.

Whatever one message raises while it is delivered (a refused transfer, or a message the mailer
cannot even build), that message alone is marked failed and the rest of the batch still goes out:
one bad message must never hold back the others on every lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from orbsurv.application.errors import MailDeliveryFailed
from orbsurv.application.ports import Clock, Mailer, OutboxStore, UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    batch_size: int = 50
    lease_seconds: int = 120
    max_attempts: int = 8
    first_retry_seconds: int = 30
    max_retry_seconds: int = 3600

    def retry_delay(self, attempts: int) -> timedelta:
        seconds = self.first_retry_seconds * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.max_retry_seconds))


class DeliverOutbox:
    def __init__(
        self,
        store: OutboxStore,
        mailer: Mailer,
        uow: UnitOfWork,
        clock: Clock,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._uow = uow
        self._clock = clock
        self._policy = policy or DeliveryPolicy()

    async def __call__(self) -> int:
        """Deliver one batch; returns how many messages were attempted."""
        now = self._clock.now()
        lease = now + timedelta(seconds=self._policy.lease_seconds)
        batch = await self._store.claim(now, lease, self._policy.batch_size)
        await self._uow.commit()
        for queued in batch:
            try:
                await self._mailer.send(queued.message)
            except Exception as exc:  # noqa: BLE001 - one message's failure, whatever it is
                await self._failed(queued.id, queued.attempts + 1, exc)
            else:
                await self._store.mark_sent(queued.id, self._clock.now())
            await self._uow.commit()
        return len(batch)

    async def _failed(self, message_id: str, attempts: int, exc: Exception) -> None:
        retry_at = None
        if attempts < self._policy.max_attempts:
            retry_at = self._clock.now() + self._policy.retry_delay(attempts)
        else:
            logger.error("giving up on mail %s after %d attempts", message_id, attempts)
        if not isinstance(exc, MailDeliveryFailed):
            logger.warning("mail %s could not be delivered: %s", message_id, type(exc).__name__)
        cause = exc.__cause__ or exc
        reason = f"{type(cause).__name__}: {cause}"[:500]
        await self._store.mark_failed(message_id, reason, attempts, retry_at)
