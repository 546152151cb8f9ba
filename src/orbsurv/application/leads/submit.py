"""JoinWaitlist, SubmitLead and ReportClientError: the public forms, open to the internet.

Every form has its own rate-limit bucket per client IP, so one cannot exhaust another. A filled
honeypot is answered like a success and stores nothing. When a captcha is configured, it is
checked. An acknowledgement mail (a fixed template, none of the submitted text) goes out at most
once a day per address, through the outbox, in the same transaction as the submission.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.identity.ports import RateLimiter
from orbsurv.application.leads.ports import CaptchaVerifier, LeadRepository, Waitlist
from orbsurv.application.ports import Clock, EmailComposer, Outbox, UnitOfWork
from orbsurv.domain.audit import budget_client
from orbsurv.domain.errors import Forbidden, RateLimited
from orbsurv.domain.leads import ClientError, Form, Lead, Submitter

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


async def _admit(
    submission: LeadSubmission,
    limiter: RateLimiter,
    captcha: CaptchaVerifier,
    policy: IntakePolicy,
) -> bool:
    """Rate limit (per form and client IP), honeypot, captcha. ``False`` for a bot, which is
    answered as if all went well and keeps nothing. Raises ``RateLimited``, ``Forbidden``."""
    form = submission.lead.form
    decision = await limiter.hit(
        f"form:{form.value}:{budget_client(submission.ip)}",
        limit=policy.form_limit,
        window_seconds=policy.form_window_seconds,
    )
    if not decision.allowed:
        raise RateLimited(
            "Too many submissions; try again later.", retry_after=decision.retry_after
        )
    if submission.honeypot:
        return False
    if policy.captcha_required and not await captcha.verify(
        submission.captcha_token, submission.ip
    ):
        raise Forbidden("The captcha was missing or not solved.", code="captcha_failed")
    return True


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    """``POST /waitlist``: one row per address (a repeat records its newer source and name).

    The busiest public write, so it goes through the ``Waitlist`` port, whose adapter writes
    the sign-ups of concurrent requests in one transaction; each request still returns only
    once its own row (and acknowledgement, when due) is committed."""

    waitlist: Waitlist
    limiter: RateLimiter
    captcha: CaptchaVerifier
    composer: EmailComposer
    clock: Clock
    policy: IntakePolicy

    async def __call__(self, submission: LeadSubmission) -> bool:
        """``True`` for a new address, or a discarded bot; ``False`` for a repeat."""
        if submission.lead.form is not Form.WAITLIST:
            raise ValueError("JoinWaitlist takes waitlist sign-ups only")
        if not await _admit(submission, self.limiter, self.captcha, self.policy):
            return True
        email = submission.lead.email
        return await self.waitlist.join(
            submission.lead,
            Submitter(ip=submission.ip, user_agent=submission.user_agent, at=self.clock.now()),
            acknowledgement=self.composer.form_acknowledgement(email, Form.WAITLIST.value),
            every_seconds=ACK_EVERY_SECONDS,
        )


class SubmitLead:
    """The other forms (contact, investor interest, pilot request): every submission is kept."""

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
        """``True``: every submission is stored (a discarded bot is answered the same)."""
        if not await _admit(submission, self._limiter, self._captcha, self._policy):
            return True
        now = self._clock.now()
        by = Submitter(ip=submission.ip, user_agent=submission.user_agent, at=now)
        await self._leads.add(submission.lead, by)
        email = submission.lead.email
        if await self._leads.claim_acknowledgement(email, now, ACK_EVERY_SECONDS):
            form = submission.lead.form.value
            await self._outbox.enqueue(self._composer.form_acknowledgement(email, form))
        await self._uow.commit()
        return True


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
            f"client_errors:{budget_client(ip)}",
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
