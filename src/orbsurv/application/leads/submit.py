"""SubmitLead and ReportClientError: the public forms, open to the internet.

Every form has its own rate-limit bucket per client IP, so one cannot exhaust another. A filled
honeypot is answered like a success and stores nothing. When a captcha is configured, it is
checked. An acknowledgement mail (a fixed template, none of the submitted text) goes out at most
once a day per address, through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.leads.ports import CaptchaVerifier, LeadRepository
from orbsurv.application.ports import Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.errors import Forbidden, RateLimited
from orbsurv.domain.leads import ClientError, Lead, Submitter

ACK_EVERY_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    form_limit: int = 10  # submissions per client IP per form ...
    form_window_seconds: int = 600  # ... per 10 minutes
    error_limit: int = 30  # client error reports per client IP ...
    error_window_seconds: int = 60  # ... per minute
    captcha_required: bool = False


@dataclass(frozen=True, slots=True)
class LeadSubmission:
    lead: Lead
    ip: str | None
    user_agent: str | None
    honeypot: str | None = None
    captcha_token: str | None = None


class SubmitLead:
    def __init__(
        self,
        leads: LeadRepository,
        limiter: RateLimiter,
        captcha: CaptchaVerifier,
        outbox: Outbox,
        composer: EmailComposer,
        uow: UnitOfWork,
        clock: Clock,
        policy: IntakePolicy,
    ) -> None:
        self._leads = leads
        self._limiter = limiter
        self._captcha = captcha
        self._outbox = outbox
        self._composer = composer
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def __call__(self, submission: LeadSubmission) -> bool:
        """``True`` for a new submission, ``False`` for a repeat (or a discarded bot)."""
        form = submission.lead.form
        decision = await self._limiter.hit(
            f"form:{form.value}:{submission.ip or 'unknown'}",
            limit=self._policy.form_limit,
            window_seconds=self._policy.form_window_seconds,
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many submissions; try again later.", retry_after=decision.retry_after
            )
        if submission.honeypot:
            return True  # a bot: answer as if all went well, keep nothing
        if self._policy.captcha_required and not await self._captcha.verify(
            submission.captcha_token, submission.ip
        ):
            raise Forbidden("The captcha was missing or not solved.", code="captcha_failed")
        now = self._clock.now()
        by = Submitter(ip=submission.ip, user_agent=submission.user_agent, at=now)
        created = await self._leads.add(submission.lead, by)
        email = submission.lead.email
        if await self._leads.claim_acknowledgement(email, now, ACK_EVERY_SECONDS):
            await self._outbox.enqueue(self._composer.form_acknowledgement(email, form.value))
        await self._uow.commit()
        return created


class ReportClientError:
    def __init__(
        self,
        leads: LeadRepository,
        limiter: RateLimiter,
        uow: UnitOfWork,
        clock: Clock,
        policy: IntakePolicy,
    ) -> None:
        self._leads = leads
        self._limiter = limiter
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def __call__(self, error: ClientError, ip: str | None) -> None:
        decision = await self._limiter.hit(
            f"client_errors:{ip or 'unknown'}",
            limit=self._policy.error_limit,
            window_seconds=self._policy.error_window_seconds,
        )
        if not decision.allowed:
            raise RateLimited(
                "Too many error reports; try again later.", retry_after=decision.retry_after
            )
        await self._leads.record_error(
            error, Submitter(ip=ip, user_agent=error.user_agent, at=self._clock.now())
        )
        await self._uow.commit()
