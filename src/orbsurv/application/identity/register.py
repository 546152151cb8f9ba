"""RegisterUser: a new ``user`` account, optionally signed in at once.

With ``require_verified_email`` (AUTH_REQUIRE_VERIFIED_EMAIL) an address must be proven before
it signs in, and registration must not reveal whether an address has an account (OWASP
Authentication Cheat Sheet, "Authentication and Error Messages"): the use case then never signs
in and answers a taken address exactly like a new one (``Registration.user`` is ``None`` either
way). The rule lives here, not in a route, so every route that registers (``POST /auth/register``
and ``POST /users``) applies it alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.account.mail_requests import VerificationMailer
from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.application.identity.policy import IdentityPolicy
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.errors import Conflict
from orbsurv.domain.identity import Scope, User


@dataclass(frozen=True, slots=True)
class RegisterCommand:
    account: CreateUserCommand
    context: RequestContext
    sign_in: bool = True


@dataclass(frozen=True, slots=True)
class Registration:
    """``user`` is ``None`` when the outcome must not be revealed (verified-email mode)."""

    user: User | None
    tokens: IssuedTokens | None


@dataclass(frozen=True, slots=True)
class RegisterUser:
    create: CreateUser
    issuer: SessionIssuer
    audit: AuditLog
    uow: UnitOfWork
    clock: Clock
    verification: VerificationMailer
    policy: IdentityPolicy

    async def __call__(self, command: RegisterCommand) -> Registration:
        """Raise ``FieldInvalid`` (weak password) and ``Conflict`` (``username_taken``; and
        ``email_taken`` unless verified-email mode hides it)."""
        hide = self.policy.require_verified_email
        try:
            user = await self.create.stage(command.account)
        except Conflict as exc:
            if hide and exc.code == "email_taken":
                return Registration(user=None, tokens=None)
            raise
        await self.audit.record(
            AuditEvent(
                action="user.registered",
                occurred_at=self.clock.now(),
                context=command.context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
            )
        )
        await self.verification.queue(user)
        tokens = None
        if command.sign_in and not hide:
            tokens = await self.issuer.open(
                user, scope=Scope.USER, amr=("pwd",), context=command.context
            )
        await self.uow.commit()
        return Registration(user=None if hide else user, tokens=tokens)
