"""RecordEvents: analytics and cookie consent, anonymous or signed in, bounded, append-only."""

from __future__ import annotations

from collections.abc import Sequence

from orbsurv.application.leads.ports import AnalyticsStore
from orbsurv.application.ports import Clock, UnitOfWork
from orbsurv.domain.analytics import MAX_BATCH, AnalyticsEvent
from orbsurv.domain.audit import RequestContext
from orbsurv.domain.errors import FieldInvalid


class RecordEvents:
    def __init__(self, store: AnalyticsStore, uow: UnitOfWork, clock: Clock) -> None:
        self._store = store
        self._uow = uow
        self._clock = clock

    async def __call__(
        self,
        events: Sequence[AnalyticsEvent],
        actor_user_id: str | None,
        context: RequestContext,
        *,
        batched: bool = True,
    ) -> int:
        """Store ``events``; ``batched`` is false when the client sent one event on its own, so
        errors name ``action`` rather than ``events[0].action`` (the field as it was sent).
        Raises ``FieldInvalid``."""
        if not events:
            raise FieldInvalid("events", "must hold at least one event")
        if len(events) > MAX_BATCH:
            raise FieldInvalid("events", f"must hold at most {MAX_BATCH} events")
        for position, event in enumerate(events):
            event.check(position if batched else None)
        await self._store.append(
            events,
            actor_user_id=actor_user_id,
            ip=context.ip,
            user_agent=context.user_agent,
            request_id=context.request_id,
            received_at=self._clock.now(),
        )
        await self._uow.commit()
        return len(events)
