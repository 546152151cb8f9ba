"""RegisterUser: a new ``user`` account, optionally signed in at once."""

from __future__ import annotations

from dataclasses import dataclass

from orbsurv.application.account.mail_requests import VerificationMailer
from orbsurv.application.identity.create_user import CreateUser, CreateUserCommand
from orbsurv.application.identity.sessions import IssuedTokens, SessionIssuer
from orbsurv.application.ports import AuditLog, Clock, UnitOfWork
from orbsurv.domain.audit import AuditEvent, RequestContext
from orbsurv.domain.identity import Scope, User


@dataclass(frozen=True, slots=True)
class RegisterCommand:
    account: CreateUserCommand
    context: RequestContext
    sign_in: bool = True


@dataclass(frozen=True, slots=True)
class Registration:
    user: User
    tokens: IssuedTokens | None


class RegisterUser:
    def __init__(
        self,
        create: CreateUser,
        issuer: SessionIssuer,
        audit: AuditLog,
        uow: UnitOfWork,
        clock: Clock,
        verification: VerificationMailer,
    ) -> None:
        self._verification = verification
        self._create = create
        self._issuer = issuer
        self._audit = audit
        self._uow = uow
        self._clock = clock

    async def __call__(self, command: RegisterCommand) -> Registration:
        user = await self._create.stage(command.account)
        await self._audit.record(
            AuditEvent(
                action="user.registered",
                occurred_at=self._clock.now(),
                context=command.context,
                actor_user_id=user.id,
                target_type="user",
                target_id=user.id,
            )
        )
        await self._verification.queue(user)
        tokens = None
        if command.sign_in:
            tokens = await self._issuer.open(
                user, scope=Scope.USER, amr=("pwd",), context=command.context
            )
        await self._uow.commit()
        return Registration(user=user, tokens=tokens)
